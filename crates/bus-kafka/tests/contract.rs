//! The Kafka bus against the bus contract, on a real Kafka-protocol broker (Tansu, started here,
//! or the one `KAFKA_BOOTSTRAP` names); and what only Kafka does: unreadable messages go to the
//! DLQ topic with the reason, and consumption goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::services;

use orchestrator_bus::Bus;
use orchestrator_bus::contract;
use orchestrator_bus_kafka::{KafkaBus, KafkaSettings};
use orchestrator_protocol::{FailedEvent, ObjectId, ResultEvent, RunId, SCHEMA_VERSION, Zone};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

/// A bus with topics of its own, on two partitions.
async fn bus(kafka: &services::TestKafka, name: &str, per_zone: bool) -> KafkaBus {
    common::bus(kafka, name, |s| {
        s.ready_per_zone = per_zone;
        s.partitions = 2;
        s.fetch_wait_max_ms = 10;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_events_reach_only_their_zone_on_a_shared_topic() {
    let kafka = services::kafka();
    contract::ready_events_reach_only_their_zone(&bus(&kafka, "zones", false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_events_reach_only_their_zone_on_topics_per_zone() {
    let kafka = services::kafka();
    contract::ready_events_reach_only_their_zone(&bus(&kafka, "zones", true).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_and_progress_round_trip() {
    let kafka = services::kafka();
    contract::results_and_progress_round_trip(&bus(&kafka, "roundtrip", false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_of_one_group_share_the_work() {
    let kafka = services::kafka();
    contract::consumers_of_one_group_share_the_work(&bus(&kafka, "group", false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_sees_every_event() {
    let kafka = services::kafka();
    contract::every_group_sees_every_event(&bus(&kafka, "fanout", false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_control_consumer_sees_every_control_message() {
    let kafka = services::kafka();
    let bus = bus(&kafka, "control", false).await;
    contract::every_control_consumer_sees_every_control_message(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncommitted_events_are_delivered_again() {
    let kafka = services::kafka();
    contract::uncommitted_events_are_delivered_again(&bus(&kafka, "redelivery", false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_messages_go_to_the_dlq_and_consumption_goes_on() {
    let kafka = services::kafka();
    let bus = bus(&kafka, "dlq", false).await;
    let mut results = bus.result_consumer("orchestrator").await.unwrap();
    let raw: FutureProducer = bus.settings().producer_config().create().unwrap();
    for body in ["{not json", r#"{"event":"Unknown","id":"x"}"#] {
        raw.send(
            FutureRecord::to(&bus.settings().topic_loaded)
                .key("1")
                .payload(body),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    }
    let ready = contract::ready(1001, Zone::Raw);
    bus.publish_results(vec![ResultEvent::loaded(&ready, "ok".into(), 3, "w")])
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(60), results.next_batch(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event.info, "ok");
    assert_eq!(bus.malformed_count(), 2);
    // The DLQ topic holds both, with the reason and the original payload.
    let dlq = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create::<rdkafka::consumer::StreamConsumer>()
        .unwrap();
    rdkafka::consumer::Consumer::subscribe(&dlq, &[bus.settings().topic_dlq.as_str()]).unwrap();
    let mut letters = Vec::new();
    while letters.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(60), dlq.recv())
            .await
            .unwrap()
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(rdkafka::Message::payload(&m).unwrap()).unwrap();
        letters.push(v);
    }
    assert!(letters.iter().all(|l| {
        l["reason"]
            .as_str()
            .unwrap()
            .starts_with("unreadable message")
    }));
    let mut payloads: Vec<&str> = letters
        .iter()
        .map(|l| l["payload"].as_str().unwrap())
        .collect();
    payloads.sort_unstable();
    assert_eq!(
        payloads,
        vec![r#"{"event":"Unknown","id":"x"}"#, "{not json"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_the_broker_never_takes_hands_every_event_back_as_transient() {
    // Nothing listens on this port: every send times out.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = KafkaSettings::new(format!("127.0.0.1:{port}"));
    s.properties = vec![("message.timeout.ms".into(), "500".into())];
    let bus = KafkaBus::new(s).unwrap();
    let ready: Vec<_> = [1001, 1002, 1003]
        .map(|id| contract::ready(id, Zone::Raw))
        .into();
    let unsent = bus.publish_ready(ready).await.unwrap_err();
    assert!(unsent.error.is_transient(), "{}", unsent.error);
    let ids: Vec<u64> = unsent.events.iter().map(|e| e.id.0).collect();
    assert_eq!(ids, [1001, 1002, 1003]);
    // Failed objects go to two topics each, and come back once each.
    let failed = FailedEvent {
        event: "ObjectFailed".into(),
        id: ObjectId(1001),
        zone: Zone::Raw,
        name: "o1001".into(),
        run_id: RunId::new("run-1"),
        attempt: 3,
        reason: "exit 1".into(),
        upstream_failed: 0,
        ts: 0,
        schema_version: SCHEMA_VERSION,
    };
    let unsent = bus.publish_failed(vec![failed]).await.unwrap_err();
    assert!(unsent.error.is_transient(), "{}", unsent.error);
    assert_eq!(unsent.events.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_too_large_for_a_message_is_refused_alone_and_the_others_go_out() {
    let kafka = services::kafka();
    let mut s = KafkaSettings::new(&kafka.bootstrap)
        .with_topic_prefix(&services::unique_prefix("toolarge"));
    s.fetch_wait_max_ms = 10;
    s.properties
        .push(("message.max.bytes".into(), "100000".into()));
    let bus = KafkaBus::new(s).unwrap();
    bus.ensure_topics().await.unwrap();
    let mut huge = contract::ready(2, Zone::Raw);
    huge.object = orchestrator_protocol::RawJson::from_string(format!(
        "{{\"IdObjet\":2,\"Pad\":\"{}\"}}",
        "x".repeat(150_000)
    ));
    let events = vec![
        contract::ready(1, Zone::Raw),
        huge,
        contract::ready(3, Zone::Raw),
    ];
    let unsent = bus.publish_ready(events).await.unwrap_err();
    assert!(
        matches!(unsent.error, orchestrator_bus::BusError::Rejected(_)),
        "{}",
        unsent.error
    );
    assert!(unsent.events.is_empty());
    let refused: Vec<u64> = unsent.rejected.iter().map(|(e, _)| e.id.0).collect();
    assert_eq!(refused, vec![2]);
    assert!(
        unsent.rejected[0]
            .1
            .contains("more than the bus's message limit")
    );
    // The other two went out.
    let mut consumer = bus.ready_consumer(Zone::Raw, "toolarge").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let batch = tokio::time::timeout(Duration::from_secs(60), consumer.next_batch(10))
            .await
            .expect("the small events arrive")
            .unwrap();
        got.extend(batch.into_iter().map(|d| d.event.id.0));
    }
    got.sort_unstable();
    assert_eq!(got, vec![1, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_the_result_consumer_while_the_broker_is_away_is_worth_trying_again() {
    let kafka = services::kafka();
    let Some(pid) = kafka.pid() else {
        eprintln!("not run: KAFKA_BOOTSTRAP names a broker this test cannot pause");
        return;
    };
    let bus = bus(&kafka, "away", false).await;
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
    };
    signal("-STOP");
    let opened = bus.result_consumer("away").await;
    signal("-CONT");
    let Err(e) = opened else {
        panic!("a consumer opened with the broker paused");
    };
    assert!(e.is_transient(), "{e}");
    assert!(bus.result_consumer("away").await.is_ok());
}
