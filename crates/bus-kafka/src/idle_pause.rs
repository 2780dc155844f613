//! The idle pause of a consumer (a workaround for Tansu 0.6.0's fetches): a consumer that has
//! waited for events a while stops fetching, looks for new ones with one offsets request a probe,
//! and fetches again as soon as one is there.
//!
//! Tansu answers a fetch by querying its storage for every partition it names and then waiting
//! out the fetch's whole `fetch.wait.max.ms`, events or not: each consumer costs it
//! partitions × 1000 / wait storage passes a second, idle or not (two thirds of a core for serve
//! and three workers at the default 10 ms wait). Paused, a consumer costs it one offsets query per
//! partition every [`PROBE_EVERY`]. On Apache Kafka, whose fetches return as soon as an event
//! arrives, the pause only delays the first event after an idle spell by up to one probe: turn it
//! off there (`KAFKA_IDLE_PAUSE_MS=0`) and raise `KAFKA_FETCH_WAIT_MAX_MS` instead.
//!
//! Nothing can be missed: a partition is resumed when its log ends past the first offset this
//! consumer has not read (its position, else its group's committed offset, else where it
//! started), when the assignment changes, or when the probe fails. A paused consumer is still
//! polled, afresh at each probe, so that a rebalance of its group is served at once. The state
//! lives in the consumer, not in a future, so a caller that drops `next_batch` (a `select!`)
//! loses nothing.

use crate::rebalance::{Partition, partitions_of};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a paused consumer looks for new events.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);
/// How long a probe's requests may take before the consumer resumes anyway.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether, and since when, a consumer is idle; what it paused.
pub(crate) struct IdlePause {
    /// Waiting this long for an event pauses the consumer; `None`: never.
    after: Option<Duration>,
    /// Since when the consumer has waited for an event with nothing delivered.
    waiting_since: Option<Instant>,
    paused: Option<Paused>,
    /// Where a consumer with no group (a broadcast one) started reading each partition.
    starts: Arc<HashMap<Partition, i64>>,
}

struct Paused {
    partitions: BTreeSet<Partition>,
    /// The first offset not read of each partition, once known.
    unread: Option<HashMap<Partition, i64>>,
    next_probe: Instant,
}

/// What a probe found.
enum Probe {
    /// Events wait (or the assignment changed, or the broker did not answer): fetch again.
    Resume,
    /// Nothing new; the first offsets not read, for the next probe.
    Idle(HashMap<Partition, i64>),
}

impl IdlePause {
    pub(crate) fn new(after: Option<Duration>, starts: HashMap<Partition, i64>) -> Self {
        IdlePause {
            after: after.filter(|d| !d.is_zero()),
            waiting_since: None,
            paused: None,
            starts: Arc::new(starts),
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    /// When waiting for an event turns into a pause (`None`: not while this wait lasts).
    pub(crate) fn deadline(&mut self) -> Option<Instant> {
        let after = self.after?;
        Some(*self.waiting_since.get_or_insert_with(Instant::now) + after)
    }

    /// An event arrived: the consumer is not idle.
    pub(crate) fn heard(&mut self) {
        self.waiting_since = None;
    }

    /// Stops fetching the partitions the consumer holds; whether it did.
    pub(crate) fn pause<C: ConsumerContext>(&mut self, consumer: &StreamConsumer<C>) -> bool {
        let partitions = match consumer.assignment() {
            Ok(list) => partitions_of(&list),
            Err(e) => {
                tracing::debug!(error = %e, "no assignment to pause");
                return false;
            }
        };
        if partitions.is_empty() {
            // Nothing to fetch: the wait goes on, and a later assignment is fetched.
            self.waiting_since = None;
            return false;
        }
        if let Err(e) = consumer.pause(&list_of(&partitions)) {
            tracing::debug!(error = %e, "could not pause an idle consumer");
            self.waiting_since = None;
            return false;
        }
        tracing::debug!(partitions = partitions.len(), "idle: fetches paused");
        self.paused = Some(Paused {
            partitions,
            unread: None,
            next_probe: Instant::now() + PROBE_EVERY,
        });
        true
    }

    /// Probes once, when the next probe is due; fetches again if events wait. Cancel-safe: what
    /// a probe learned is kept, and a dropped probe is started again by the next call.
    pub(crate) async fn probe<C: ConsumerContext + 'static>(
        &mut self,
        consumer: &Arc<StreamConsumer<C>>,
    ) {
        if let Some(paused) = &mut self.paused {
            tokio::time::sleep_until(paused.next_probe.into()).await;
            let (c, partitions, unread, starts) = (
                consumer.clone(),
                paused.partitions.clone(),
                paused.unread.clone(),
                self.starts.clone(),
            );
            let probe = tokio::task::spawn_blocking(move || {
                probe(&c, &partitions, unread, &starts).unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "idle probe failed: fetching again");
                    Probe::Resume
                })
            })
            .await
            .unwrap_or(Probe::Resume);
            match probe {
                Probe::Idle(unread) => {
                    paused.unread = Some(unread);
                    paused.next_probe = Instant::now() + PROBE_EVERY;
                }
                Probe::Resume => self.resume(consumer),
            }
        }
    }

    /// Fetches again what was paused, and whatever the consumer holds now.
    pub(crate) fn resume<C: ConsumerContext + 'static>(
        &mut self,
        consumer: &Arc<StreamConsumer<C>>,
    ) {
        let Some(paused) = self.paused.take() else {
            return;
        };
        let mut partitions = paused.partitions;
        if let Ok(list) = consumer.assignment() {
            partitions.extend(partitions_of(&list));
        }
        let list = list_of(&partitions);
        if let Err(e) = consumer.resume(&list) {
            // A partition no longer held refuses it; the others are resumed.
            tracing::debug!(error = %e, "resuming an idle consumer");
        }
        self.waiting_since = None;
        tracing::debug!(partitions = partitions.len(), "events wait: fetching again");
        // librdkafka's broker thread sees a resumed partition when it next wakes (up to a
        // second when it has nothing to fetch): a request to the partitions' leaders wakes it.
        let c = consumer.clone();
        tokio::task::spawn_blocking(move || {
            let _ = c.offsets_for_times(ends(&list), PROBE_TIMEOUT);
        });
    }
}

/// Whether events wait on `partitions` past the first offsets this consumer has not read.
fn probe<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    partitions: &BTreeSet<Partition>,
    unread: Option<HashMap<Partition, i64>>,
    starts: &HashMap<Partition, i64>,
) -> KafkaResult<Probe> {
    if partitions_of(&consumer.assignment()?) != *partitions {
        return Ok(Probe::Resume);
    }
    let unread = match unread {
        Some(u) => u,
        None => first_unread(consumer, partitions, starts)?,
    };
    let ends = consumer.offsets_for_times(ends(&list_of(partitions)), PROBE_TIMEOUT)?;
    for e in ends.elements() {
        let key = (e.topic().to_string(), e.partition());
        let waiting = match (e.offset(), unread.get(&key)) {
            (Offset::Offset(end), Some(&first)) => end > first,
            // An end or a start not known: look rather than guess.
            _ => true,
        };
        if waiting {
            return Ok(Probe::Resume);
        }
    }
    Ok(Probe::Idle(unread))
}

/// The first offset of each partition this consumer has not read: after the last one it read,
/// else its group's committed offset, else where it started reading, else the log's start.
fn first_unread<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    partitions: &BTreeSet<Partition>,
    starts: &HashMap<Partition, i64>,
) -> KafkaResult<HashMap<Partition, i64>> {
    let mut first = HashMap::new();
    for e in consumer.position()?.elements() {
        let key = (e.topic().to_string(), e.partition());
        if let (true, Offset::Offset(n)) = (partitions.contains(&key), e.offset()) {
            first.insert(key, n);
        }
    }
    let mut unknown: BTreeSet<Partition> = partitions
        .iter()
        .filter(|p| !first.contains_key(*p))
        .cloned()
        .collect();
    if unknown.is_empty() {
        return Ok(first);
    }
    let committed = consumer.committed_offsets(list_of(&unknown), PROBE_TIMEOUT)?;
    for e in committed.elements() {
        let key = (e.topic().to_string(), e.partition());
        if let Offset::Offset(n) = e.offset() {
            unknown.remove(&key);
            first.insert(key, n);
        }
    }
    for key in unknown {
        let n = match starts.get(&key) {
            Some(&n) => n,
            // Nothing read, nothing committed: it reads from the log's start (`earliest`).
            None => consumer.fetch_watermarks(&key.0, key.1, PROBE_TIMEOUT)?.0,
        };
        first.insert(key, n);
    }
    Ok(first)
}

fn list_of<'a>(partitions: impl IntoIterator<Item = &'a Partition>) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (topic, partition) in partitions {
        list.add_partition(topic, *partition);
    }
    list
}

/// `list` asking for each partition's end (the timestamp "latest" of a ListOffsets request).
fn ends(list: &TopicPartitionList) -> TopicPartitionList {
    let mut asked = TopicPartitionList::new();
    for e in list.elements() {
        // Adding with an offset never fails for a partition just added.
        let _ = asked.add_partition_offset(e.topic(), e.partition(), Offset::End);
    }
    asked
}
