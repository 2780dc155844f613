//! A Kafka consumer of one event type. It batches what the broker has, sets aside (to the DLQ
//! topic, with the reason) what cannot be read, skips what is not for it (another zone's Ready
//! events on a shared topic), and stores a partition's offset only up to the first event not yet
//! acknowledged: what was taken and not handled is delivered again after a restart.

use crate::Producer;
use crate::idle_pause::IdlePause;
use crate::rebalance::RebalanceLog;
use crate::{KafkaSettings, KafkaStats, backend, classify, rejoin};
use async_trait::async_trait;
use futures::FutureExt;
use orchestrator_bus::{AckToken, BusError, Consumer, Delivery};
use orchestrator_protocol::SCHEMA_VERSION;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How a consumer gets its partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    /// Joins the group and shares the partitions with its other members (workers).
    Subscribe,
    /// Reads every partition itself, resuming from the group's committed offsets (the single
    /// orchestrator that reads results).
    AssignAll,
    /// Reads every partition itself from the end, with no group: every such consumer sees
    /// every message published after it started (control messages to every worker).
    Broadcast,
}

/// Which events of the topic are for this consumer.
pub type EventFilter<T> = Box<dyn Fn(&T) -> bool + Send>;

/// Which messages are for this consumer, decided before they are read (topic, payload): a
/// message it skips is neither delivered nor set aside as unreadable.
pub type RawFilter = Box<dyn Fn(&str, &[u8]) -> bool + Send>;

#[derive(Default)]
struct PartitionState {
    /// Offsets handed out and not acknowledged.
    outstanding: BTreeSet<i64>,
    /// The offset after the highest one taken.
    next: i64,
    /// The offset last stored for commit.
    stored: i64,
}

pub struct KafkaConsumer<T> {
    /// Shared with the rejoin watch of a group member (see `rejoin.rs`).
    consumer: Arc<StreamConsumer<RebalanceLog>>,
    settings: Arc<KafkaSettings>,
    producer: Producer,
    stats: Arc<KafkaStats>,
    filter: Option<EventFilter<T>>,
    raw_filter: Option<RawFilter>,
    next_token: u64,
    delivered: HashMap<u64, (Arc<str>, i32, i64)>,
    partitions: BTreeMap<(Arc<str>, i32), PartitionState>,
    /// Stops fetching while nothing arrives (see `idle_pause.rs`).
    idle: IdlePause,
}

impl<T: serde::de::DeserializeOwned + Send + 'static> KafkaConsumer<T> {
    pub(crate) fn new(
        settings: Arc<KafkaSettings>,
        topics: &[String],
        group: &str,
        membership: Membership,
        producer: Producer,
        stats: Arc<KafkaStats>,
        filter: Option<EventFilter<T>>,
    ) -> Result<Self, BusError> {
        let config = settings.consumer_config(group);
        // Only the member itself carries the static membership name (the rejoin watch reads the
        // group's offsets through a client of its own, made from `config`).
        let mut member_config = config.clone();
        if membership == Membership::Subscribe
            && let Some(id) = &settings.group_instance_id
        {
            member_config.set("group.instance.id", id);
        }
        let session = config
            .get("session.timeout.ms")
            .and_then(|ms| ms.parse().ok())
            .map_or(Duration::from_secs(10), Duration::from_millis);
        let consumer: Arc<StreamConsumer<RebalanceLog>> = Arc::new(
            member_config
                .create_with_context(RebalanceLog::new(group))
                .map_err(backend)?,
        );
        // Where a broadcast consumer starts reading each partition (it has no group offsets).
        let mut starts = HashMap::new();
        match membership {
            Membership::Subscribe => {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                consumer.subscribe(&names).map_err(backend)?;
                rejoin::watch(
                    Arc::downgrade(&consumer),
                    config,
                    topics.to_vec(),
                    session.max(settings.longest_task.unwrap_or_default()),
                    stats.clone(),
                );
            }
            Membership::AssignAll | Membership::Broadcast => {
                // Every partition, from the group's committed offsets (a broadcast consumer:
                // from each partition's end now), with no group to join: a successor takes over
                // at once, with no dead member's partitions to wait for.
                let mut list = TopicPartitionList::new();
                for topic in topics {
                    // A broker away for a while is worth waiting for (the caller retries).
                    let metadata = consumer
                        .fetch_metadata(Some(topic), Duration::from_secs(10))
                        .map_err(|e| classify(&e))?;
                    for t in metadata.topics() {
                        for p in t.partitions() {
                            let from = if membership == Membership::Broadcast {
                                let (_, end) = consumer
                                    .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                                    .map_err(|e| classify(&e))?;
                                starts.insert((topic.clone(), p.id()), end);
                                Offset::Offset(end)
                            } else {
                                Offset::Stored
                            };
                            list.add_partition_offset(topic, p.id(), from)
                                .map_err(backend)?;
                        }
                    }
                }
                if list.count() == 0 {
                    return Err(BusError::Backend(format!(
                        "no partitions found for {topics:?}"
                    )));
                }
                consumer.assign(&list).map_err(backend)?;
            }
        }
        let idle = IdlePause::new(settings.idle_pause, starts);
        Ok(KafkaConsumer {
            consumer,
            idle,
            settings,
            producer,
            stats,
            filter,
            raw_filter: None,
            next_token: 0,
            delivered: HashMap::new(),
            partitions: BTreeMap::new(),
        })
    }

    /// Skips, before reading them, the messages `keep` says are not for this consumer.
    pub(crate) fn with_raw_filter(mut self, keep: RawFilter) -> Self {
        self.raw_filter = Some(keep);
        self
    }

    /// Reads one message: a delivery, or `None` when it was set aside or is not for us.
    fn take(&mut self, msg: &OwnedMessage) -> Option<Delivery<T>> {
        let topic: Arc<str> = Arc::from(msg.topic());
        let (partition, offset) = (msg.partition(), msg.offset());
        let state = self
            .partitions
            .entry((topic.clone(), partition))
            .or_default();
        state.next = state.next.max(offset + 1);
        let payload = msg.payload().unwrap_or_default();
        if self
            .raw_filter
            .as_ref()
            .is_some_and(|keep| !keep(msg.topic(), payload))
        {
            return None;
        }
        let event = match serde_json::from_slice::<T>(payload) {
            Ok(event) => event,
            Err(e) => {
                self.reject(msg, format!("unreadable message: {e}"));
                return None;
            }
        };
        if self.filter.as_ref().is_some_and(|keep| !keep(&event)) {
            return None;
        }
        state.outstanding.insert(offset);
        let token = self.next_token;
        self.next_token += 1;
        self.delivered.insert(token, (topic, partition, offset));
        Some(Delivery {
            event,
            token: AckToken(token),
        })
    }

    /// Logs, counts and forwards a message nobody can handle to the DLQ topic.
    fn reject(&self, msg: &OwnedMessage, reason: String) {
        self.stats.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(topic = msg.topic(), partition = msg.partition(), offset = msg.offset(), %reason, "message set aside to the DLQ topic");
        let body = rejected_record(
            &reason,
            msg.topic(),
            msg.partition(),
            msg.offset(),
            msg.payload().unwrap_or_default(),
        );
        // Enqueued without waiting, so that taking messages stays cancel-safe.
        if let Err(e) = self
            .producer
            .send(&self.settings.topic_dlq, None, body.as_bytes(), None)
        {
            tracing::error!(error = %e, "could not send a rejected message to the DLQ topic");
        }
    }

    /// Stores, per partition, the offset of the first event not yet acknowledged.
    fn store_offsets(&mut self) -> Result<(), BusError> {
        // Never fails today; kept fallible for backends where storing can.
        for ((topic, partition), state) in &mut self.partitions {
            let upto = state.outstanding.first().copied().unwrap_or(state.next);
            if upto > state.stored {
                // librdkafka stores the offset given plus one: pass the last offset handled.
                // A partition taken away by a rebalance refuses it: its new owner resumes from
                // the last committed offset, so the events are delivered again, never lost.
                if let Err(e) = self.consumer.store_offset(topic, *partition, upto - 1) {
                    tracing::debug!(%topic, partition, error = %e, "offset not stored (partition reassigned?)");
                }
                state.stored = upto;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl<T: serde::de::DeserializeOwned + Send + 'static> Consumer<T> for KafkaConsumer<T> {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery<T>>, BusError> {
        loop {
            // Wait for one message (pausing once idle long enough); transient broker errors are
            // logged and waited out.
            let received = if self.idle.is_paused() {
                // Paused, the consumer is still polled, afresh at each probe: a rebalance is
                // served through it (the group's other members wait for it; a `recv` left
                // waiting was seen never woken for one while its partitions were paused: a
                // joining worker got no partitions), and librdkafka leaves the group after
                // `max.poll.interval.ms` without a poll.
                let (consumer, idle) = (&self.consumer, &mut self.idle);
                let got = tokio::select! {
                    received = consumer.recv() => Some(received),
                    () = idle.probe(consumer) => None,
                };
                match got {
                    Some(received) => {
                        self.idle.resume(&self.consumer);
                        received
                    }
                    None => continue,
                }
            } else {
                match self.idle.deadline() {
                    Some(at) => {
                        match tokio::time::timeout_at(at.into(), self.consumer.recv()).await {
                            Ok(received) => received,
                            Err(_) => {
                                if self.idle.pause(&self.consumer) {
                                    self.stats.idle_pauses.fetch_add(1, Ordering::Relaxed);
                                }
                                continue;
                            }
                        }
                    }
                    None => self.consumer.recv().await,
                }
            };
            self.idle.heard();
            let first = match received {
                Ok(m) => m.detach(),
                Err(e) => {
                    tracing::warn!(error = %e, "consuming: broker error; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut messages = vec![first];
            // Then whatever is already there, up to `max`, without yielding: from the first
            // message on, this call runs to its end in the same poll, so a caller that drops the
            // future (a `select!`) cannot lose messages taken from the queue. (A `recv` that is
            // pending has taken nothing.)
            while messages.len() < max {
                match self.consumer.recv().now_or_never() {
                    Some(Ok(m)) => messages.push(m.detach()),
                    Some(Err(_)) | None => break,
                }
            }
            let batch: Vec<Delivery<T>> = messages.iter().filter_map(|m| self.take(m)).collect();
            self.store_offsets()?;
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
    }

    async fn ack(&mut self, tokens: Vec<AckToken>) -> Result<(), BusError> {
        for t in tokens {
            if let Some((topic, partition, offset)) = self.delivered.remove(&t.0)
                && let Some(state) = self.partitions.get_mut(&(topic, partition))
            {
                state.outstanding.remove(&offset);
            }
        }
        self.store_offsets()
    }
}

impl<T> Drop for KafkaConsumer<T> {
    fn drop(&mut self) {
        // Commit what was stored, so that the group's next consumer resumes exactly there.
        let _ = self.consumer.commit_consumer_state(CommitMode::Sync);
    }
}

/// Bytes of a rejected payload the DLQ record carries: enough to see what it was, small enough
/// that the record always fits in a message whatever the payload's size.
pub const REJECTED_HEAD_BYTES: usize = 4096;

/// The DLQ record of a message nobody can handle: the reason, where it was, and the head of its
/// payload with the payload's size and SHA-256 (to find it again on the topic).
pub fn rejected_record(
    reason: &str,
    topic: &str,
    partition: i32,
    offset: i64,
    payload: &[u8],
) -> String {
    use sha2::Digest;
    let head = &payload[..payload.len().min(REJECTED_HEAD_BYTES)];
    let hash: String = sha2::Sha256::digest(payload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let reason = &reason[..reason.floor_char_boundary(REJECTED_HEAD_BYTES)];
    serde_json::json!({
        "event": "MessageRejected",
        "schema_version": SCHEMA_VERSION,
        "reason": reason,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "payload": String::from_utf8_lossy(head),
        "payload_bytes": payload.len(),
        "payload_truncated": head.len() < payload.len(),
        "payload_sha256": hash,
    })
    .to_string()
}

#[cfg(test)]
mod rejected_tests {
    use super::*;

    #[test]
    fn a_huge_poison_message_gives_a_small_record_with_its_size_and_hash() {
        let payload = vec![b'"'; 900 * 1024];
        let record = rejected_record("unreadable message: x", "t", 2, 7, &payload);
        assert!(
            record.len() < 3 * REJECTED_HEAD_BYTES,
            "{} bytes",
            record.len()
        );
        let v: serde_json::Value = serde_json::from_str(&record).unwrap_or_default();
        assert_eq!(v["payload_bytes"], 900 * 1024);
        assert_eq!(v["payload_truncated"], true);
        assert_eq!(v["payload_sha256"].as_str().map(str::len), Some(64));
        let small = rejected_record("r", "t", 0, 0, b"{oops");
        let v: serde_json::Value = serde_json::from_str(&small).unwrap_or_default();
        assert_eq!(
            (v["payload"].as_str(), v["payload_truncated"].as_bool()),
            (Some("{oops"), Some(false))
        );
    }
}
