//! The Kafka bus's settings: the broker, the old system's topic names (env `TOPIC_READY`, …),
//! per-zone Ready topics, partitions, and any librdkafka property passed through (SASL, TLS).

use orchestrator_protocol::Zone;
use rdkafka::ClientConfig;
use std::time::Duration;

/// The least time a fetch of progress reports waits on the broker, whatever
/// `fetch_wait_max_ms` says.
pub const PROGRESS_FETCH_WAIT_MAX_MS: u32 = 100;

/// How long a consumer waits for an event before it pauses its fetches, by default (ms).
pub const DEFAULT_IDLE_PAUSE_MS: u64 = 2000;

/// Least fetch wait of the control consumers (see [`KafkaSettings::for_control`]).
pub const CONTROL_FETCH_WAIT_MAX_MS: u32 = 500;

#[derive(Clone, Debug)]
pub struct KafkaSettings {
    /// `KAFKA_BOOTSTRAP`: host:port[,host:port…].
    pub bootstrap: String,
    /// `TOPIC_READY` (default `event.load.ready`).
    pub topic_ready: String,
    /// `TOPIC_LOADED` (default `event.load.loaded`): results, loaded or failed.
    pub topic_loaded: String,
    /// `TOPIC_PROGRESS` (default `event.load.progress`): Started and heartbeats.
    pub topic_progress: String,
    /// `TOPIC_FAILED` (default `event.load.failed`): objects out of retries.
    pub topic_failed: String,
    /// `TOPIC_DLQ` (default `event.load.dlq`): dead letters and unreadable messages.
    pub topic_dlq: String,
    /// `TOPIC_CONTROL` (default `event.load.control`): messages to every worker.
    pub topic_control: String,
    /// One Ready topic per zone (`event.load.ready.raw`, …) so each layer reads only its work.
    pub ready_per_zone: bool,
    /// `KAFKA_PARTITIONS`: partitions of the topics created at start-up.
    pub partitions: i32,
    /// How long the broker may hold a fetch when there is nothing new (latency vs. load).
    pub fetch_wait_max_ms: u32,
    /// `KAFKA_IDLE_PAUSE_MS`: a consumer that waited this long for an event stops fetching and
    /// probes for new ones instead (a workaround for Tansu, see `idle_pause.rs`); `None`: never.
    pub idle_pause: Option<Duration>,
    /// librdkafka properties passed through as they are (`security.protocol`, `sasl.*`, …).
    pub properties: Vec<(String, String)>,
    /// The longest a task of a consumer's process may run (a worker's `TASK_TIMEOUT_SECONDS`),
    /// when bounded: a partition's owner then commits at least that often, and the rejoin watch
    /// of an idle member waits at least that long (see `rejoin.rs`).
    pub longest_task: Option<Duration>,
    /// A worker's `GROUP_INSTANCE_ID`: its name in the groups it joins, kept across restarts
    /// (Kafka static membership: a restarted member takes its partitions back at once).
    pub group_instance_id: Option<String>,
}

impl KafkaSettings {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        KafkaSettings {
            bootstrap: bootstrap.into(),
            topic_ready: "event.load.ready".into(),
            topic_loaded: "event.load.loaded".into(),
            topic_progress: "event.load.progress".into(),
            topic_failed: "event.load.failed".into(),
            topic_dlq: "event.load.dlq".into(),
            topic_control: "event.load.control".into(),
            ready_per_zone: false,
            partitions: 3,
            fetch_wait_max_ms: 10,
            idle_pause: Some(Duration::from_millis(DEFAULT_IDLE_PAUSE_MS)),
            properties: Vec::new(),
            longest_task: None,
            group_instance_id: None,
        }
    }

    /// These settings with every topic named `<prefix>.ready`, `<prefix>.loaded`, … (a stack or
    /// a test that shares its broker with others).
    pub fn with_topic_prefix(mut self, prefix: &str) -> Self {
        self.topic_ready = format!("{prefix}.ready");
        self.topic_loaded = format!("{prefix}.loaded");
        self.topic_progress = format!("{prefix}.progress");
        self.topic_failed = format!("{prefix}.failed");
        self.topic_dlq = format!("{prefix}.dlq");
        self.topic_control = format!("{prefix}.control");
        self
    }

    /// Where the Ready events of `zone` go.
    pub fn ready_topic(&self, zone: Zone) -> String {
        if self.ready_per_zone {
            format!("{}.{}", self.topic_ready, zone.short())
        } else {
            self.topic_ready.clone()
        }
    }

    /// Every topic the bus uses.
    pub fn all_topics(&self) -> Vec<String> {
        let mut t: Vec<String> = if self.ready_per_zone {
            Zone::ALL.iter().map(|z| self.ready_topic(*z)).collect()
        } else {
            vec![self.topic_ready.clone()]
        };
        t.extend([
            self.topic_loaded.clone(),
            self.topic_progress.clone(),
            self.topic_failed.clone(),
            self.topic_dlq.clone(),
            self.topic_control.clone(),
        ]);
        t
    }

    /// These settings for the consumer of progress reports. They are advisory (they extend
    /// leases counted in seconds) and mostly idle, so its fetches wait at least
    /// [`PROGRESS_FETCH_WAIT_MAX_MS`]: a broker that polls its storage for each fetch (Tansu)
    /// spends its time on idle fetches, and the links of a chain of objects wait for it.
    pub fn for_progress(&self) -> KafkaSettings {
        KafkaSettings {
            fetch_wait_max_ms: self.fetch_wait_max_ms.max(PROGRESS_FETCH_WAIT_MAX_MS),
            ..self.clone()
        }
    }

    /// The settings of the control consumers (one per worker): control messages are rare and a
    /// cancel may take a moment, so their fetches wait [`CONTROL_FETCH_WAIT_MAX_MS`], and idle
    /// workers cost the broker little.
    pub fn for_control(&self) -> KafkaSettings {
        KafkaSettings {
            fetch_wait_max_ms: self.fetch_wait_max_ms.max(CONTROL_FETCH_WAIT_MAX_MS),
            ..self.clone()
        }
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }

    fn with_properties(&self, mut c: ClientConfig) -> ClientConfig {
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// Idempotent, acks=all, with a bounded local queue. `linger.ms=1` gathers a wave of sends
    /// (see `producer.rs`), handed over one by one, into one request per partition: with 0,
    /// librdkafka built a request from the first few and kept the rest waiting for its answer.
    /// A link of a chain of objects pays it twice (its Ready event and its result).
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("queue.buffering.max.messages", "100000")
            .set("message.timeout.ms", "30000");
        self.with_properties(c)
    }

    /// At-least-once: offsets are stored by the caller after handling, committed in the background.
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", self.fetch_wait_max_ms.to_string())
            .set("session.timeout.ms", "10000");
        self.with_properties(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_fetches_wait_at_least_their_floor_and_keep_a_longer_wait() {
        let mut s = KafkaSettings::new("127.0.0.1:9092");
        s.fetch_wait_max_ms = 5;
        assert_eq!(
            s.for_progress().fetch_wait_max_ms,
            PROGRESS_FETCH_WAIT_MAX_MS
        );
        assert_eq!(s.fetch_wait_max_ms, 5, "the other consumers keep theirs");
        s.fetch_wait_max_ms = 500;
        assert_eq!(s.for_progress().fetch_wait_max_ms, 500);
        assert_eq!(
            s.for_progress()
                .consumer_config("g")
                .get("fetch.wait.max.ms"),
            Some("500")
        );
    }
}
