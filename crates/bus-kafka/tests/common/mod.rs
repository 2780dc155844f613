//! What the bus's tests against the real broker share: the broker, and a bus whose topics are
//! its own (so that tests sharing a broker do not see each other's events).

#[path = "../../../../tests/common/services.rs"]
pub mod services;

use orchestrator_bus_kafka::{KafkaBus, KafkaSettings};

/// A bus on `kafka` with topics of its own named after `name`, its settings as `adjust` leaves
/// them, its topics created.
pub async fn bus(
    kafka: &services::TestKafka,
    name: &str,
    adjust: impl FnOnce(&mut KafkaSettings),
) -> KafkaBus {
    let mut s =
        KafkaSettings::new(&kafka.bootstrap).with_topic_prefix(&services::unique_prefix(name));
    adjust(&mut s);
    let bus = KafkaBus::new(s).expect("a bus");
    bus.ensure_topics().await.expect("its topics");
    bus
}
