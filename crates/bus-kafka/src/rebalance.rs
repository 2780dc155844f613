//! The consumers' client context: logs each partition assignment and revocation of a group
//! member, so that operators (and tests) can see how a layer's workers share the partitions.

use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};

/// A consumer context that logs rebalances of group `group`.
pub struct RebalanceLog {
    pub group: String,
}

impl ClientContext for RebalanceLog {}

impl ConsumerContext for RebalanceLog {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => tracing::info!(
                group = %self.group,
                count = list.count(),
                partitions = %describe(list),
                "partitions assigned"
            ),
            Rebalance::Revoke(list) => tracing::info!(
                group = %self.group,
                count = list.count(),
                partitions = %describe(list),
                "partitions revoked"
            ),
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.group, error = %e, "rebalance failed")
            }
        }
    }
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
