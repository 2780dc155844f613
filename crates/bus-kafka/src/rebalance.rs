//! The consumers' client context: logs each partition assignment and revocation of a group
//! member, so that operators (and tests) can see how a layer's workers share the partitions, and
//! remembers the member's assignment for the rejoin watch (`rejoin.rs`).

use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Instant;

/// A partition of a topic.
pub type Partition = (String, i32);

/// The partitions a member holds, and since when.
pub type Assignment = (BTreeSet<Partition>, Instant);

/// A consumer context that logs rebalances of group `group`.
pub struct RebalanceLog {
    group: String,
    /// The partitions the member holds, and since when (`None` before its first assignment).
    assignment: Mutex<Option<Assignment>>,
}

impl RebalanceLog {
    pub fn new(group: &str) -> RebalanceLog {
        RebalanceLog {
            group: group.to_string(),
            assignment: Mutex::new(None),
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// The partitions the member holds, and since when.
    pub fn assignment(&self) -> Option<Assignment> {
        match self.assignment.lock() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_assignment(&self, held: BTreeSet<Partition>) {
        let now = Some((held, Instant::now()));
        match self.assignment.lock() {
            Ok(mut a) => *a = now,
            Err(poisoned) => *poisoned.into_inner() = now,
        }
    }
}

impl ClientContext for RebalanceLog {}

impl ConsumerContext for RebalanceLog {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (list, held, what) = match rebalance {
            Rebalance::Assign(list) => (list, partitions_of(list), "partitions assigned"),
            Rebalance::Revoke(list) => (list, BTreeSet::new(), "partitions revoked"),
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.group, error = %e, "rebalance failed");
                return;
            }
        };
        self.set_assignment(held);
        tracing::info!(
            group = %self.group,
            count = list.count(),
            partitions = %describe(list),
            "{what}"
        );
    }
}

/// The partitions `list` names.
pub fn partitions_of(list: &TopicPartitionList) -> BTreeSet<Partition> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// `topic[0,1] other[2]`.
fn describe(list: &TopicPartitionList) -> String {
    let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for e in list.elements() {
        by_topic
            .entry(e.topic().to_string())
            .or_default()
            .push(e.partition());
    }
    by_topic
        .iter()
        .map(|(t, ps)| {
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{t}[{}]", ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}
