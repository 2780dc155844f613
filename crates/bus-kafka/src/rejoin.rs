//! The rejoin watch of a group member (a workaround for Tansu 0.6.0's group bug): a member that
//! sees events wait on a partition of its topics that it does not hold, and that nobody consumes,
//! joins its group again, so that a broker's failed rebalance cannot strand a layer's work.
//!
//! Tansu 0.6.0 can leave a member that joins while a dead member is still in the group (a worker
//! restarted at once after a crash) without partitions, or with only some of them, and never
//! assigns the others once the dead member is dropped: a partition with no live owner. A
//! partition that a live member owns sees its offset committed as the owner works, so the others
//! stay put (more workers than partitions, or a fair share); after each rejoin that leaves a
//! partition stranded again the watch waits twice as long, so that it never churns the group.
//! Owners busy with tasks longer than the wait commit nothing meanwhile: a task timeout, when set,
//! lengthens the wait to match. On Apache Kafka, whose groups do not strand partitions, only
//! such an owner can trigger it, and the cost is one rebalance (events in flight delivered again,
//! under their idempotency keys).

use crate::KafkaStats;
use crate::rebalance::RebalanceLog;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often the watch looks at the partitions the member does not hold.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Added to the grace (the session timeout, or a longer task timeout): by then the broker has
/// dropped any dead member, and a live owner has committed (auto-commit runs every 5 s).
const MARGIN: Duration = Duration::from_secs(5);
/// The longest wait between two rejoins.
const MAX_WAIT: Duration = Duration::from_secs(600);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a subscription that failed after a rejoin's unsubscribe is tried again.
const RESUBSCRIBE_EVERY: Duration = Duration::from_secs(1);

use crate::rebalance::Partition;

/// One partition as the group stands on it.
struct Backlog {
    partition: Partition,
    /// The group's committed offset (the earliest event when nothing is committed).
    committed: i64,
    /// Events beyond it.
    waiting: i64,
}

/// Watches `consumer` (made from `config`, subscribed to `topics`) from a thread of its own,
/// until the consumer is dropped; counts its rejoins in `stats`. `grace` is the longer of the
/// group's session timeout (by then a dead member is dropped) and the longest a task may run
/// (by then a live owner has committed).
pub(crate) fn watch(
    consumer: Weak<StreamConsumer<RebalanceLog>>,
    config: ClientConfig,
    topics: Vec<String>,
    grace: Duration,
    stats: Arc<KafkaStats>,
) {
    let spawned = std::thread::Builder::new()
        .name("kafka-rejoin".into())
        .spawn(move || run(consumer, config, topics, grace, stats));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the rejoin watch");
    }
}

fn run(
    consumer: Weak<StreamConsumer<RebalanceLog>>,
    config: ClientConfig,
    topics: Vec<String>,
    grace: Duration,
    stats: Arc<KafkaStats>,
) {
    let mut watch = Watch::new(grace);
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
        let Some((held, held_since)) = assignment else {
            continue; // not yet in the group
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
        let Some((stranded, waited)) = watch.check(Instant::now(), &held, held_since, backlog)
        else {
            continue;
        };
        let Some(member) = consumer.upgrade() else {
            return;
        };
        let (topic, partition) = stranded.partition;
        tracing::warn!(
            group = member.context().group(),
            %topic,
            partition,
            waiting = stranded.waiting,
            held = held.len(),
            after_seconds = waited.as_secs(),
            "events wait unconsumed on a partition this member does not hold; joining the group again"
        );
        stats.rejoins.fetch_add(1, Ordering::Relaxed);
        member.unsubscribe();
        drop(member);
        subscribe_again(&consumer, &topics);
    }
}

/// Subscribes the member to `topics` again, trying until it takes or the member is dropped: a
/// member left unsubscribed would consume nothing, and the watch rejoins only while it waits.
fn subscribe_again(consumer: &Weak<StreamConsumer<RebalanceLog>>, topics: &[String]) {
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    loop {
        let Some(member) = consumer.upgrade() else {
            return;
        };
        match member.subscribe(&names) {
            Ok(()) => return,
            Err(e) => tracing::warn!(
                error = %e,
                retry_in_seconds = RESUBSCRIBE_EVERY.as_secs(),
                "rejoining the group failed; trying again"
            ),
        }
        drop(member);
        std::thread::sleep(RESUBSCRIBE_EVERY);
    }
}

/// When to rejoin, from what the watch sees (no I/O; tested below).
struct Watch {
    base: Duration,
    /// How long a member must have held its partitions, and a partition it does not hold its
    /// committed offset unmoved with events beyond it, before the member rejoins.
    wait: Duration,
    /// Per partition with events waiting: its committed offset, and since when it has not moved.
    unmoved: HashMap<Partition, (i64, Instant)>,
}

impl Watch {
    fn new(grace: Duration) -> Watch {
        let base = grace + MARGIN;
        Watch {
            base,
            wait: base,
            unmoved: HashMap::new(),
        }
    }

    /// Nothing waits where the member does not look: the wait is back to its base.
    fn settled(&mut self) {
        self.wait = self.base;
        self.unmoved.clear();
    }

    /// The member has held `held` since `held_since`, and the group stands at `backlog` at
    /// `now`. Returns a partition it does not hold whose events have waited unconsumed for the
    /// wait, with the wait it took; the next rejoin then waits twice as long.
    fn check(
        &mut self,
        now: Instant,
        held: &BTreeSet<Partition>,
        held_since: Instant,
        backlog: Vec<Backlog>,
    ) -> Option<(Backlog, Duration)> {
        let foreign: Vec<Backlog> = backlog
            .into_iter()
            .filter(|b| b.waiting > 0 && !held.contains(&b.partition))
            .collect();
        if foreign.is_empty() {
            self.settled();
            return None;
        }
        self.unmoved
            .retain(|key, _| foreign.iter().any(|b| &b.partition == key));
        let mut stranded = None;
        for b in foreign {
            let since = self
                .unmoved
                .entry(b.partition.clone())
                .or_insert((b.committed, now));
            if since.0 != b.committed {
                *since = (b.committed, now);
            }
            if now.duration_since(since.1) >= self.wait {
                stranded.get_or_insert(b);
            }
        }
        let stranded = stranded.filter(|_| now.duration_since(held_since) >= self.wait)?;
        let waited = self.wait;
        self.wait = (self.wait * 2).min(MAX_WAIT);
        self.unmoved.clear();
        Some((stranded, waited))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    const SESSION: Duration = Duration::from_secs(10);

    fn at(partition: i32, committed: i64, high: i64) -> Backlog {
        Backlog {
            partition: ("ready".to_string(), partition),
            committed,
            waiting: high - committed,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A member that holds no partitions.
    fn idle(
        watch: &mut Watch,
        now: Instant,
        since: Instant,
        backlog: Vec<Backlog>,
    ) -> Option<(Backlog, Duration)> {
        watch.check(now, &BTreeSet::new(), since, backlog)
    }

    fn holding(partitions: &[i32]) -> BTreeSet<Partition> {
        partitions
            .iter()
            .map(|p| ("ready".to_string(), *p))
            .collect()
    }

    #[test]
    fn a_member_holding_some_partitions_rejoins_for_one_nobody_owns() {
        // The case seen on Tansu: the restarted worker holds 0 and 1, partition 2 has no owner.
        let (t0, mut watch) = (Instant::now(), Watch::new(SESSION));
        let held = holding(&[0, 1]);
        let stuck = |own: i64| vec![at(0, own, own + 40), at(1, own, own), at(2, 300, 966)];
        for s in [5, 10, 15] {
            let seen = watch.check(t0 + secs(s), &held, t0, stuck(s as i64));
            assert!(seen.is_none(), "at {s} s");
        }
        let (stranded, waited) = watch
            .check(t0 + secs(20), &held, t0, stuck(20))
            .expect("a rejoin");
        assert_eq!(stranded.partition, ("ready".to_string(), 2));
        assert_eq!((stranded.waiting, waited), (666, secs(15)));
    }

    #[test]
    fn a_member_holding_some_partitions_stays_while_the_others_owners_commit() {
        let (t0, mut watch) = (Instant::now(), Watch::new(SESSION));
        let held = holding(&[0]);
        for step in 1..=60u64 {
            let theirs = step as i64 * 25;
            let seen = watch.check(
                t0 + secs(step * 5),
                &held,
                t0,
                vec![at(0, 5, 5), at(1, theirs, theirs + 200)],
            );
            assert!(seen.is_none(), "rejoined at {} s", step * 5);
        }
    }

    #[test]
    fn an_idle_member_stays_while_the_owners_commit() {
        let (t0, mut watch) = (Instant::now(), Watch::new(SESSION));
        for step in 1..=60u64 {
            let committed = step as i64 * 10; // the owner moves on every 5 s
            let seen = idle(
                &mut watch,
                t0 + secs(step * 5),
                t0,
                vec![at(0, committed, committed + 500)],
            );
            assert!(seen.is_none(), "rejoined at {} s", step * 5);
        }
    }

    #[test]
    fn an_idle_member_stays_when_nothing_waits() {
        let (t0, mut watch) = (Instant::now(), Watch::new(SESSION));
        for step in 1..=60u64 {
            let seen = idle(
                &mut watch,
                t0 + secs(step * 5),
                t0,
                vec![at(0, 40, 40), at(1, 7, 7)],
            );
            assert!(seen.is_none());
        }
    }

    #[test]
    fn a_member_rejoins_once_events_have_waited_past_the_session_and_then_waits_longer() {
        let (t0, mut watch) = (Instant::now(), Watch::new(SESSION));
        let stuck = || vec![at(0, 100, 150), at(1, 30, 30)];
        // Session 10 s + 5 s: nothing before 15 s of an unmoved offset.
        for s in [5, 10] {
            assert!(
                idle(&mut watch, t0 + secs(s), t0, stuck()).is_none(),
                "at {s} s"
            );
        }
        // First seen at 5 s: unmoved for 15 s at 20 s.
        assert!(idle(&mut watch, t0 + secs(15), t0, stuck()).is_none());
        let (stranded, waited) = idle(&mut watch, t0 + secs(20), t0, stuck()).expect("a rejoin");
        assert_eq!(stranded.partition, ("ready".to_string(), 0));
        assert_eq!((stranded.waiting, waited), (50, secs(15)));
        // Rejoined at 20 s and idle again: the next rejoin waits 30 s.
        let rejoined = t0 + secs(20);
        for s in [25, 30, 40, 50] {
            assert!(
                idle(&mut watch, t0 + secs(s), rejoined, stuck()).is_none(),
                "at {s} s"
            );
        }
        let (_, waited) =
            idle(&mut watch, t0 + secs(55), rejoined, stuck()).expect("a second rejoin");
        assert_eq!(waited, secs(30));
        // Every partition with events held again: the wait is back to 15 s.
        let all: BTreeSet<Partition> = [0, 1].map(|p| ("ready".to_string(), p)).into();
        assert!(
            watch
                .check(t0 + secs(60), &all, rejoined, stuck())
                .is_none()
        );
        assert_eq!(watch.wait, secs(15));
    }

    #[test]
    fn a_member_that_just_became_idle_waits_its_own_time() {
        let (t0, mut watch) = (Instant::now(), Watch::new(SESSION));
        // The offset has not moved for a minute, but the member lost its partitions at 55 s.
        for s in (5..=60).step_by(5) {
            let seen = idle(&mut watch, t0 + secs(s), t0 + secs(55), vec![at(2, 9, 10)]);
            assert!(seen.is_none(), "at {s} s");
        }
        assert!(idle(&mut watch, t0 + secs(70), t0 + secs(55), vec![at(2, 9, 10)]).is_some());
    }

    #[test]
    fn the_wait_between_rejoins_has_a_ceiling() {
        let (t0, mut watch) = (Instant::now(), Watch::new(SESSION));
        for _ in 0..10 {
            watch.wait = (watch.wait * 2).min(MAX_WAIT);
        }
        assert_eq!(watch.wait, MAX_WAIT);
        assert!(idle(&mut watch, t0 + secs(1), t0, vec![at(0, 1, 2)]).is_none());
    }
}
