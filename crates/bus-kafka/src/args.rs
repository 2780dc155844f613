//! The command-line and environment settings of the Kafka bus, shared by `orchestrator serve`
//! and the worker binaries; the environment keeps the old system's names.

use crate::KafkaSettings;
use crate::settings::DEFAULT_IDLE_PAUSE_MS;
use clap::Args;
use std::time::Duration;

#[derive(Clone, Debug, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port[,host:port…]).
    #[arg(long, env = "KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: Option<String>,
    /// Topic of Ready events.
    #[arg(long, env = "TOPIC_READY", default_value = "event.load.ready")]
    pub topic_ready: String,
    /// Topic of results (loaded and failed).
    #[arg(long, env = "TOPIC_LOADED", default_value = "event.load.loaded")]
    pub topic_loaded: String,
    /// Topic of Started and heartbeat events.
    #[arg(long, env = "TOPIC_PROGRESS", default_value = "event.load.progress")]
    pub topic_progress: String,
    /// Topic of objects out of retries.
    #[arg(long, env = "TOPIC_FAILED", default_value = "event.load.failed")]
    pub topic_failed: String,
    /// Topic of dead letters and unreadable messages.
    #[arg(long, env = "TOPIC_DLQ", default_value = "event.load.dlq")]
    pub topic_dlq: String,
    /// Topic of messages to every worker (a cancelled run's attempts are stopped).
    #[arg(long, env = "TOPIC_CONTROL", default_value = "event.load.control")]
    pub topic_control: String,
    /// One Ready topic per zone (`<TOPIC_READY>.raw`, …) so each layer reads only its own work.
    #[arg(long, env = "READY_TOPIC_PER_ZONE")]
    pub ready_topic_per_zone: bool,
    /// Partitions of the topics created at start-up.
    #[arg(long, env = "KAFKA_PARTITIONS", default_value_t = 3)]
    pub kafka_partitions: i32,
    /// Longest time the broker holds a fetch (lower: less latency, more requests).
    #[arg(long, env = "KAFKA_FETCH_WAIT_MAX_MS", default_value_t = 10)]
    pub kafka_fetch_wait_max_ms: u32,
    /// A consumer that waited this long for an event stops fetching and looks for new ones every
    /// 250 ms instead (a workaround for Tansu, which polls its storage for every fetch); 0: never.
    #[arg(long, env = "KAFKA_IDLE_PAUSE_MS", default_value_t = DEFAULT_IDLE_PAUSE_MS)]
    pub kafka_idle_pause_ms: u64,
    /// librdkafka properties passed through, KEY=VALUE (repeatable, or comma-separated in the
    /// environment), e.g. security.protocol=SASL_SSL.
    #[arg(
        long = "kafka-property",
        env = "KAFKA_PROPERTIES",
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    pub kafka_properties: Vec<String>,
}

impl KafkaArgs {
    /// The bus settings, or why they cannot be made.
    pub fn settings(&self) -> Result<KafkaSettings, String> {
        let bootstrap = self
            .kafka_bootstrap
            .clone()
            .filter(|b| !b.trim().is_empty())
            .ok_or("KAFKA_BOOTSTRAP (or --kafka-bootstrap) is not set: name the Kafka brokers, host:port")?;
        let mut s = KafkaSettings::new(bootstrap);
        s.topic_ready = self.topic_ready.clone();
        s.topic_loaded = self.topic_loaded.clone();
        s.topic_progress = self.topic_progress.clone();
        s.topic_failed = self.topic_failed.clone();
        s.topic_dlq = self.topic_dlq.clone();
        s.topic_control = self.topic_control.clone();
        s.ready_per_zone = self.ready_topic_per_zone;
        s.partitions = self.kafka_partitions.max(1);
        s.fetch_wait_max_ms = self.kafka_fetch_wait_max_ms;
        s.idle_pause =
            Some(Duration::from_millis(self.kafka_idle_pause_ms)).filter(|d| !d.is_zero());
        // An empty entry (`KAFKA_PROPERTIES=""`, a trailing comma) names no property; an entry
        // without `=` after a property continues its value, which may hold commas itself
        // (`debug=fetch,cgrp`).
        for p in self
            .kafka_properties
            .iter()
            .filter(|p| !p.trim().is_empty())
        {
            match (p.split_once('='), s.properties.last_mut()) {
                (Some((k, v)), _) => s
                    .properties
                    .push((k.trim().to_string(), v.trim().to_string())),
                (None, Some((_, value))) => {
                    value.push(',');
                    value.push_str(p.trim());
                }
                (None, None) => return Err(format!("Kafka property {p:?}: expected KEY=VALUE")),
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::KafkaArgs;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        kafka: KafkaArgs,
    }

    fn settings(args: &[&str]) -> Result<crate::KafkaSettings, String> {
        let mut argv = vec!["test", "--kafka-bootstrap", "127.0.0.1:9092"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .kafka
            .settings()
    }

    #[test]
    fn empty_property_entries_name_nothing() {
        assert!(properties("").is_empty());
        assert_eq!(
            properties("linger.ms=5,, security.protocol = SSL ,"),
            ["linger.ms=5", "security.protocol=SSL"]
        );
    }

    #[test]
    fn a_value_may_hold_commas() {
        assert_eq!(
            properties("debug=fetch,cgrp,topic,linger.ms=0"),
            ["debug=fetch,cgrp,topic", "linger.ms=0"]
        );
    }

    /// The properties `--kafka-property RAW` passes through, as `key=value`.
    fn properties(raw: &str) -> Vec<String> {
        let s = settings(&["--kafka-property", raw]).unwrap();
        s.properties
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    #[test]
    fn a_property_without_a_value_is_refused_by_name() {
        let e = settings(&["--kafka-property", "linger.ms"]).unwrap_err();
        assert!(
            e.contains("\"linger.ms\"") && e.contains("KEY=VALUE"),
            "{e}"
        );
    }
}
