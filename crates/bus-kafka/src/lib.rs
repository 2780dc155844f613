//! The Kafka bus: the same `Bus` trait as the in-process bus, on a Kafka-protocol broker. It keeps
//! the old system's topics and JSON shapes so its existing workers keep working, produces
//! idempotently with many sends in flight, and consumes at-least-once (an offset is stored only
//! when the caller commits what it has handled).

mod args;
mod consumer;
mod errors;
mod idle_pause;
mod legacy;
mod producer;
mod rebalance;
mod rejoin;
mod settings;

pub use args::KafkaArgs;
pub use consumer::{EventFilter, KafkaConsumer, Membership};
pub use settings::KafkaSettings;

use async_trait::async_trait;
pub(crate) use errors::{backend, classify};
use errors::{is_permanent, is_too_large, too_large_reason};
use orchestrator_bus::{Bus, BusError, Consumer, Published, Unsent};
use orchestrator_protocol::{
    ControlEvent, EventJson, FailedEvent, ProgressEvent, ReadyEvent, ResultEvent, Traced, Zone,
};
use producer::Delivery;
pub use producer::Producer;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Counters of what the bus had to set aside.
#[derive(Debug, Default)]
pub struct KafkaStats {
    /// Messages that could not be read (bad JSON, unknown shape), sent to the DLQ topic.
    pub malformed: AtomicU64,
    /// Times a group member joined its group again (see `rejoin.rs`).
    pub rejoins: AtomicU64,
    /// Times a consumer stopped fetching, idle (see `idle_pause.rs`).
    pub idle_pauses: AtomicU64,
}

pub struct KafkaBus {
    settings: Arc<KafkaSettings>,
    /// Replaced by a fresh one after a publish fails (see [`KafkaBus::renew_producer`]).
    producer: RwLock<Producer>,
    stats: Arc<KafkaStats>,
}

/// Broker metadata through `producer`'s connections: the topics that exist (blocking: run it
/// off the async threads).
fn metadata(
    producer: &Producer,
    timeout: Duration,
) -> Result<std::collections::HashSet<String>, KafkaError> {
    let m = producer.client().fetch_metadata(None, timeout)?;
    Ok(m.topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.name().to_string())
        .collect())
}

/// What became of one event of a publish.
enum Fate {
    Sent,
    /// Not sent; worth sending again when the publish's error is transient.
    Failed,
    /// Can never be sent, and why.
    Rejected(String),
}

impl KafkaBus {
    /// A producer on `settings.bootstrap`; nothing is sent until the first publish.
    pub fn new(settings: KafkaSettings) -> Result<KafkaBus, BusError> {
        let producer = Producer::create(&settings.producer_config()).map_err(backend)?;
        Ok(KafkaBus {
            settings: Arc::new(settings),
            producer: RwLock::new(producer),
            stats: Arc::default(),
        })
    }

    /// The producer of the moment (a cheap handle).
    fn producer(&self) -> Producer {
        match self.producer.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts a fresh producer (a new producer id) in place of one whose sends failed. Such a
    /// producer may hold sequence numbers the broker no longer agrees with: after requests
    /// that timed out here and were written by the broker later, Tansu 0.6.0 refuses every
    /// later batch of that producer with an unknown error. Handles already taken keep the old
    /// one until they are done with it.
    fn renew_producer(&self) {
        match Producer::create(&self.settings.producer_config()) {
            Ok(fresh) => {
                // The old one goes with its last handle, on its own thread.
                match self.producer.write() {
                    Ok(mut p) => *p = fresh,
                    Err(poisoned) => *poisoned.into_inner() = fresh,
                }
                self.connect_producer_soon();
                tracing::info!("publishing failed: the next publish uses a fresh producer");
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not create a fresh producer; keeping the old one")
            }
        }
    }

    pub fn settings(&self) -> &KafkaSettings {
        &self.settings
    }

    pub fn stats(&self) -> &Arc<KafkaStats> {
        &self.stats
    }

    /// Creates the bus's topics with `settings.partitions` partitions where they do not exist,
    /// and connects the producer meanwhile (at start-up, so that the first publish is not held
    /// up). Only the missing ones are asked for, so that a broker logs no "already exists"
    /// error for every process that starts.
    pub async fn ensure_topics(&self) -> Result<(), BusError> {
        self.connect_producer_soon();
        let producer = self.producer();
        let existing =
            tokio::task::spawn_blocking(move || metadata(&producer, Duration::from_secs(5)))
                .await
                .map_err(backend)?
                .map_err(|e| BusError::Unavailable(e.to_string()))?;
        let names: Vec<String> = self
            .settings
            .all_topics()
            .into_iter()
            .filter(|t| !existing.contains(t))
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.settings.bootstrap);
        for (k, v) in &self.settings.properties {
            config.set(k, v);
        }
        let admin: AdminClient<DefaultClientContext> = config.create().map_err(backend)?;
        let topics: Vec<NewTopic> = names
            .iter()
            .map(|t| NewTopic::new(t, self.settings.partitions, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(10)))
            .request_timeout(Some(Duration::from_secs(5)));
        // At start-up the broker may not be up yet: a failed request is worth trying again.
        let results = admin
            .create_topics(&topics, &options)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    let why = format!("creating topic {topic}: {code}");
                    return Err(if is_permanent(code) {
                        BusError::Backend(why)
                    } else {
                        BusError::Unavailable(why)
                    });
                }
            }
        }
        Ok(())
    }

    /// Connects the producer now, in the background, rather than at its first send: an
    /// idempotent producer sends nothing before it has a producer id, and librdkafka asks for
    /// one only when a broker connection is up, trying again every 500 ms. `serve` started with
    /// `OBJECTS_PATH` sent its first Ready events 1 s after it started without this, 50 ms with
    /// it.
    fn connect_producer_soon(&self) {
        let producer = self.producer();
        tokio::task::spawn_blocking(move || metadata(&producer, Duration::from_secs(10)));
    }

    /// Broker metadata within `timeout`, for readiness probes.
    pub async fn check(&self, timeout: Duration) -> Result<(), BusError> {
        let producer = self.producer();
        tokio::task::spawn_blocking(move || metadata(&producer, timeout))
            .await
            .map_err(backend)?
            .map(|_| ())
            .map_err(backend)
    }

    /// Sends every event to its topics (keyed by object id, with the attempt's trace context in
    /// a `traceparent` header), many in flight at once, then waits for all deliveries. A full
    /// local queue is back-pressure: the send waits for room. On failure, hands back the events
    /// with a send that failed (an event sent to two topics goes back whole), and apart from
    /// them the events too large to ever be sent, which do not stop the others.
    async fn send_all<'t, T: EventJson + Traced>(
        &self,
        events: Vec<T>,
        topics_of: impl Fn(&T) -> &'t [&'t str],
    ) -> Published<T> {
        let producer = self.producer();
        let mut deliveries: Vec<(usize, Delivery)> = Vec::with_capacity(events.len());
        let mut fates: Vec<Fate> = (0..events.len()).map(|_| Fate::Sent).collect();
        let mut error = None;
        'events: for (i, value) in events.iter().enumerate() {
            let payload = match value.to_json() {
                Ok(p) => p,
                Err(e) => return Err(Unsent::fatal(backend(e))),
            };
            let key = value.object_id().to_string();
            let trace = value.traceparent();
            for topic in topics_of(value) {
                loop {
                    // The schema version is in the body (`schema_version`); a header per
                    // message is a row per message in some brokers' storage, so only the trace
                    // has one.
                    let headers = OwnedHeaders::new().insert(Header {
                        key: "traceparent",
                        value: Some(trace.as_str()),
                    });
                    match producer.send(topic, Some(&key), &payload, Some(headers)) {
                        Ok(delivery) => {
                            deliveries.push((i, delivery));
                            break;
                        }
                        Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(e) if is_too_large(&e) => {
                            fates[i] = Fate::Rejected(too_large_reason(&e, payload.len()));
                            continue 'events;
                        }
                        Err(e) => {
                            // This event and the ones after it were not sent.
                            fates[i..].iter_mut().for_each(|f| *f = Fate::Failed);
                            error = Some(classify(&e));
                            break 'events;
                        }
                    }
                }
            }
        }
        for (i, result) in futures::future::join_all(
            deliveries
                .into_iter()
                .map(|(i, d)| async move { (i, d.await) }),
        )
        .await
        {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err((e, size))) if is_too_large(&e) => {
                    fates[i] = Fate::Rejected(too_large_reason(&e, size));
                }
                Ok(Err((e, _))) => {
                    fates[i] = Fate::Failed;
                    error.get_or_insert(classify(&e));
                }
                Err(_) => {
                    fates[i] = Fate::Failed;
                    error.get_or_insert(BusError::Closed);
                }
            }
        }
        let refused = fates
            .iter()
            .filter(|f| matches!(f, Fate::Rejected(_)))
            .count();
        if error.is_none() && refused == 0 {
            return Ok(());
        }
        self.renew_producer();
        let error =
            error.unwrap_or_else(|| BusError::Rejected(format!("{refused} events too large")));
        let again = error.is_transient();
        let mut unsent = Unsent::again(error, Vec::new());
        for (event, fate) in events.into_iter().zip(fates) {
            match fate {
                Fate::Failed if again => unsent.events.push(event),
                Fate::Rejected(reason) => unsent.rejected.push((event, reason)),
                _ => {}
            }
        }
        Err(unsent)
    }

    /// A consumer of `topics` with `settings` (the bus's own, or adjusted for its topic).
    fn consumer<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        settings: Arc<KafkaSettings>,
        topics: &[String],
        group: &str,
        membership: Membership,
        filter: Option<EventFilter<T>>,
    ) -> Result<Box<dyn Consumer<T>>, BusError> {
        let consumer = KafkaConsumer::<T>::new(
            settings,
            topics,
            group,
            membership,
            self.producer(),
            self.stats.clone(),
            filter,
        )?;
        Ok(Box::new(consumer))
    }

    /// Counts a message set aside (for the bus's metrics).
    pub fn malformed_count(&self) -> u64 {
        self.stats.malformed.load(Ordering::Relaxed)
    }

    /// Counts the times a consumer of this bus joined its group again, left without partitions
    /// while events waited (for the bus's metrics).
    pub fn rejoin_count(&self) -> u64 {
        self.stats.rejoins.load(Ordering::Relaxed)
    }

    /// Counts the times a consumer of this bus stopped fetching, idle (see `idle_pause.rs`).
    pub fn idle_pause_count(&self) -> u64 {
        self.stats.idle_pauses.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish_ready(&self, events: Vec<ReadyEvent>) -> Published<ReadyEvent> {
        let names = Zone::ALL.map(|z| self.settings.ready_topic(z));
        let topics: [[&str; 1]; 3] = [[&names[0]], [&names[1]], [&names[2]]];
        self.send_all(events, |e| &topics[e.zone.index()]).await
    }
    async fn publish_results(&self, events: Vec<ResultEvent>) -> Published<ResultEvent> {
        let topics = [self.settings.topic_loaded.as_str()];
        self.send_all(events, |_| &topics).await
    }
    async fn publish_progress(&self, events: Vec<ProgressEvent>) -> Published<ProgressEvent> {
        let topics = [self.settings.topic_progress.as_str()];
        self.send_all(events, |_| &topics).await
    }
    async fn publish_failed(&self, events: Vec<FailedEvent>) -> Published<FailedEvent> {
        let topics = [
            self.settings.topic_failed.as_str(),
            self.settings.topic_dlq.as_str(),
        ];
        self.send_all(events, |_| &topics).await
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
            self.settings.clone(),
            &[self.settings.ready_topic(zone)],
            group,
            Membership::Subscribe,
            filter,
        )
    }
    /// Results from `TOPIC_LOADED`, and the failed results the old system's workers publish
    /// to `TOPIC_FAILED` instead (`{"event":"ObjectLoaded","status":"failed",…}`); the
    /// orchestrator's own `ObjectFailed` events on that topic are not results and are skipped.
    async fn result_consumer(
        &self,
        group: &str,
    ) -> Result<Box<dyn Consumer<ResultEvent>>, BusError> {
        let failed_topic = self.settings.topic_failed.clone();
        let topics = [
            self.settings.topic_loaded.clone(),
            self.settings.topic_failed.clone(),
        ];
        let consumer = KafkaConsumer::<ResultEvent>::new(
            self.settings.clone(),
            &topics,
            group,
            Membership::AssignAll,
            self.producer(),
            self.stats.clone(),
            None,
        )?
        .with_raw_filter(Box::new(move |topic, payload| {
            topic != failed_topic || legacy::is_worker_result(payload)
        }));
        Ok(Box::new(consumer))
    }
    async fn progress_consumer(
        &self,
        group: &str,
    ) -> Result<Box<dyn Consumer<ProgressEvent>>, BusError> {
        // Committed offsets of their own, apart from the results'.
        let group = format!("{group}.progress");
        self.consumer(
            Arc::new(self.settings.for_progress()),
            std::slice::from_ref(&self.settings.topic_progress),
            &group,
            Membership::AssignAll,
            None,
        )
    }
    async fn publish_control(&self, events: Vec<ControlEvent>) -> Published<ControlEvent> {
        let topics = [self.settings.topic_control.as_str()];
        self.send_all(events, |_| &topics).await
    }
    async fn control_consumer(
        &self,
        member: &str,
    ) -> Result<Box<dyn Consumer<ControlEvent>>, BusError> {
        self.consumer(
            Arc::new(self.settings.for_control()),
            std::slice::from_ref(&self.settings.topic_control),
            &format!("control.{member}"),
            Membership::Broadcast,
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
    let what = format!("creating the topics on Kafka at {}", bus.settings.bootstrap);
    orchestrator_bus::retry::until_ok(&what, stop, || bus.ensure_topics()).await
}
