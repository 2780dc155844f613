//! The rejoin watch of a group member: a member left without partitions while a partition of its
//! topics has events that nobody consumes joins its group again, so that a broker's failed
//! rebalance cannot strand a layer's work.
//!
//! Tansu 0.6.0 can leave a member that joins while a dead member is still in the group (a worker
//! restarted at once after a crash) without partitions, and never assigns them once the dead
//! member is dropped. A legitimately idle member (more workers than partitions) sees its
//! partitions' owners commit, so it stays put; after each rejoin that leaves it idle again the
//! watch waits twice as long, so that it never churns the group.

use crate::KafkaStats;
use crate::rebalance::RebalanceLog;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often the watch looks, while the member holds no partitions.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Added to the session timeout: by then the broker has dropped any dead member.
const MARGIN: Duration = Duration::from_secs(5);
/// The longest wait between two rejoins.
const MAX_WAIT: Duration = Duration::from_secs(600);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

type Partition = (String, i32);

/// One partition as the group stands on it.
struct Backlog {
    partition: Partition,
    /// The group's committed offset (the earliest event when nothing is committed).
    committed: i64,
    /// Events beyond it.
    waiting: i64,
}

/// Watches `consumer` (made from `config`, subscribed to `topics`, with session timeout
/// `session`) from a thread of its own, until the consumer is dropped; counts its rejoins in
/// `stats`.
pub(crate) fn watch(
    consumer: Weak<StreamConsumer<RebalanceLog>>,
    config: ClientConfig,
    topics: Vec<String>,
    session: Duration,
    stats: Arc<KafkaStats>,
) {
    let spawned = std::thread::Builder::new()
        .name("kafka-rejoin".into())
        .spawn(move || run(consumer, config, topics, session, stats));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the rejoin watch");
    }
}

fn run(
    consumer: Weak<StreamConsumer<RebalanceLog>>,
    config: ClientConfig,
    topics: Vec<String>,
    session: Duration,
    stats: Arc<KafkaStats>,
) {
    let base = session + MARGIN;
    let mut wait = base;
    // Per partition with events waiting: its committed offset, and since when it has not moved.
    let mut unmoved: HashMap<Partition, (i64, Instant)> = HashMap::new();
    // The group's offsets are read through a client of its own, never subscribed (so never a
    // member): the member itself is held only for an instant, so that dropping it (leaving the
    // group on shutdown) never waits for these requests.
    let mut probe: Option<BaseConsumer> = None;
    loop {
        std::thread::sleep(CHECK_EVERY);
        let assignment = match consumer.upgrade() {
            Some(member) => member.context().assignment(),
            None => return,
        };
        let idle_since = match assignment {
            Some((0, since)) => since,
            Some(_) => {
                wait = base;
                unmoved.clear();
                continue;
            }
            None => continue,
        };
        let probe = match &mut probe {
            Some(p) => &*p,
            None => match config.create::<BaseConsumer>() {
                Ok(p) => &*probe.insert(p),
                Err(e) => {
                    tracing::debug!(error = %e, "rejoin watch: no client to read offsets with");
                    continue;
                }
            },
        };
        let backlog = match backlog(probe, &topics) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "rejoin watch: could not read the group's offsets");
                continue;
            }
        };
        let now = Instant::now();
        unmoved.retain(|key, _| backlog.iter().any(|b| &b.partition == key && b.waiting > 0));
        let mut stranded = None;
        for b in backlog.into_iter().filter(|b| b.waiting > 0) {
            let since = unmoved
                .entry(b.partition.clone())
                .or_insert((b.committed, now));
            if since.0 != b.committed {
                *since = (b.committed, now);
            }
            if now.duration_since(since.1) >= wait {
                stranded.get_or_insert(b);
            }
        }
        if let Some(Backlog {
            partition: (topic, partition),
            waiting,
            ..
        }) = stranded
            && now.duration_since(idle_since) >= wait
        {
            let Some(member) = consumer.upgrade() else {
                return;
            };
            tracing::warn!(
                group = member.context().group(),
                %topic,
                partition,
                waiting,
                after_seconds = wait.as_secs(),
                "this member holds no partitions while events wait unconsumed; joining the group again"
            );
            stats.rejoins.fetch_add(1, Ordering::Relaxed);
            member.unsubscribe();
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            if let Err(e) = member.subscribe(&names) {
                tracing::warn!(error = %e, "rejoining the group failed");
            }
            wait = (wait * 2).min(MAX_WAIT);
            unmoved.clear();
        }
    }
}

/// Each partition of `topics`: the group's committed offset and how many events lie beyond it.
fn backlog(consumer: &BaseConsumer, topics: &[String]) -> Result<Vec<Backlog>, KafkaError> {
    let mut list = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                list.add_partition(topic, p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(list, REQUEST_TIMEOUT)?;
    let mut backlog = Vec::new();
    for e in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(e.topic(), e.partition(), REQUEST_TIMEOUT)?;
        // Nothing committed yet: the group starts from the earliest event.
        let at = match e.offset() {
            Offset::Offset(n) => n.max(low),
            _ => low,
        };
        backlog.push(Backlog {
            partition: (e.topic().to_string(), e.partition()),
            committed: at,
            waiting: high - at,
        });
    }
    Ok(backlog)
}
