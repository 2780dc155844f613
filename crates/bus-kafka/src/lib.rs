//! The Kafka bus: the same `Bus` trait as the in-process bus, on a Kafka-protocol broker. It keeps
//! the old system's topics and JSON shapes so its existing workers keep working, produces
//! idempotently with many sends in flight, and consumes at-least-once (an offset is stored only
//! when the caller commits what it has handled).

mod args;
mod consumer;
mod rebalance;
mod settings;

pub use args::KafkaArgs;
pub use consumer::{EventFilter, KafkaConsumer, Membership};
pub use settings::KafkaSettings;

use async_trait::async_trait;
use orchestrator_bus::{Bus, BusError, Consumer};
use orchestrator_protocol::{FailedEvent, ProgressEvent, ReadyEvent, ResultEvent, Traced, Zone};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of what the bus had to set aside.
#[derive(Debug, Default)]
pub struct KafkaStats {
    /// Messages that could not be read (bad JSON, unknown shape), sent to the DLQ topic.
    pub malformed: AtomicU64,
}

pub struct KafkaBus {
    settings: Arc<KafkaSettings>,
    producer: FutureProducer,
    stats: Arc<KafkaStats>,
}

pub(crate) fn backend(e: impl std::fmt::Display) -> BusError {
    BusError::Backend(e.to_string())
}

impl KafkaBus {
    /// A producer on `settings.bootstrap`; nothing is sent until the first publish.
    pub fn new(settings: KafkaSettings) -> Result<KafkaBus, BusError> {
        let producer: FutureProducer = settings.producer_config().create().map_err(backend)?;
        Ok(KafkaBus {
            settings: Arc::new(settings),
            producer,
            stats: Arc::default(),
        })
    }

    pub fn settings(&self) -> &KafkaSettings {
        &self.settings
    }

    pub fn stats(&self) -> &Arc<KafkaStats> {
        &self.stats
    }

    /// Creates the bus's topics with `settings.partitions` partitions where they do not exist.
    pub async fn ensure_topics(&self) -> Result<(), BusError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.settings.bootstrap);
        for (k, v) in &self.settings.properties {
            config.set(k, v);
        }
        let admin: AdminClient<DefaultClientContext> = config.create().map_err(backend)?;
        let names = self.settings.all_topics();
        let topics: Vec<NewTopic> = names
            .iter()
            .map(|t| NewTopic::new(t, self.settings.partitions, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(10)))
            .request_timeout(Some(Duration::from_secs(5)));
        let results = admin
            .create_topics(&topics, &options)
            .await
            .map_err(backend)?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(BusError::Backend(format!("creating topic {topic}: {code}")));
                }
            }
        }
        Ok(())
    }

    /// Broker metadata within `timeout`, for readiness probes.
    pub async fn check(&self, timeout: Duration) -> Result<(), BusError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer;
            producer
                .client()
                .fetch_metadata(None, timeout)
                .map(|_| ())
                .map_err(backend)
        })
        .await
        .map_err(backend)?
    }

    /// Sends every record (keyed by object id, with the attempt's trace context in a
    /// `traceparent` header), many in flight at once, then waits for all deliveries. A full local
    /// queue is back-pressure: the send waits for room.
    async fn send_all<T: Serialize + Traced>(
        &self,
        records: Vec<(&str, T)>,
    ) -> Result<(), BusError> {
        let mut deliveries: Vec<DeliveryFuture> = Vec::with_capacity(records.len());
        for (topic, value) in records {
            let payload = serde_json::to_vec(&value).map_err(backend)?;
            let key = value.object_id().to_string();
            let trace = value.traceparent();
            loop {
                // The schema version is in the body (`schema_version`); a header per message
                // is a row per message in some brokers' storage, so only the trace has one.
                let headers = OwnedHeaders::new().insert(Header {
                    key: "traceparent",
                    value: Some(trace.as_str()),
                });
                let record = FutureRecord::to(topic)
                    .key(&key)
                    .payload(&payload)
                    .headers(headers);
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(backend(e)),
                }
            }
        }
        for result in futures::future::join_all(deliveries).await {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(backend(e)),
                Err(_) => return Err(BusError::Closed),
            }
        }
        Ok(())
    }

    fn consumer<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        topics: &[String],
        group: &str,
        membership: Membership,
        filter: Option<EventFilter<T>>,
    ) -> Result<Box<dyn Consumer<T>>, BusError> {
        let consumer = KafkaConsumer::<T>::new(
            self.settings.clone(),
            topics,
            group,
            membership,
            self.producer.clone(),
            self.stats.clone(),
            filter,
        )?;
        Ok(Box::new(consumer))
    }

    /// Counts a message set aside (for the bus's metrics).
    pub fn malformed_count(&self) -> u64 {
        self.stats.malformed.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish_ready(&self, events: Vec<ReadyEvent>) -> Result<(), BusError> {
        let topics = Zone::ALL.map(|z| self.settings.ready_topic(z));
        let records = events
            .into_iter()
            .map(|e| (topics[e.zone.index()].as_str(), e))
            .collect();
        self.send_all(records).await
    }
    async fn publish_results(&self, events: Vec<ResultEvent>) -> Result<(), BusError> {
        let topic = self.settings.topic_loaded.as_str();
        self.send_all(events.into_iter().map(|e| (topic, e)).collect())
            .await
    }
    async fn publish_progress(&self, events: Vec<ProgressEvent>) -> Result<(), BusError> {
        let topic = self.settings.topic_progress.as_str();
        self.send_all(events.into_iter().map(|e| (topic, e)).collect())
            .await
    }
    async fn publish_failed(&self, events: Vec<FailedEvent>) -> Result<(), BusError> {
        let (failed, dlq) = (
            self.settings.topic_failed.as_str(),
            self.settings.topic_dlq.as_str(),
        );
        let records = events
            .into_iter()
            .flat_map(|e| [(failed, e.clone()), (dlq, e)])
            .collect();
        self.send_all(records).await
    }
    async fn ready_consumer(
        &self,
        zone: Zone,
        group: &str,
    ) -> Result<Box<dyn Consumer<ReadyEvent>>, BusError> {
        // On the shared Ready topic every layer's workers see every event: keep this zone's.
        let filter: Option<EventFilter<ReadyEvent>> = (!self.settings.ready_per_zone)
            .then(|| Box::new(move |e: &ReadyEvent| e.zone == zone) as EventFilter<ReadyEvent>);
        self.consumer(
            &[self.settings.ready_topic(zone)],
            group,
            Membership::Subscribe,
            filter,
        )
    }
    async fn result_consumer(
        &self,
        group: &str,
    ) -> Result<Box<dyn Consumer<ResultEvent>>, BusError> {
        self.consumer(
            std::slice::from_ref(&self.settings.topic_loaded),
            group,
            Membership::AssignAll,
            None,
        )
    }
    async fn progress_consumer(
        &self,
        group: &str,
    ) -> Result<Box<dyn Consumer<ProgressEvent>>, BusError> {
        // Committed offsets of their own, apart from the results'.
        let group = format!("{group}.progress");
        self.consumer(
            std::slice::from_ref(&self.settings.topic_progress),
            &group,
            Membership::AssignAll,
            None,
        )
    }
}

/// Creates the topics, retrying with backoff while the broker is unreachable (saying so in the
/// log); gives up only when `stop` fires.
pub async fn ensure_topics_with_retry(
    bus: &KafkaBus,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<(), BusError> {
    let mut delay = Duration::from_millis(250);
    loop {
        match bus.ensure_topics().await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, bootstrap = %bus.settings.bootstrap, retry_in_ms = delay.as_millis() as u64, "Kafka unreachable; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return Err(e),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(15));
            }
        }
    }
}
