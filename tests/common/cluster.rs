//! A test cluster for the distributed mode: a broker, a Redis, and `orchestrator serve` and
//! worker processes with their own topics and keys; logs are shown when a test fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use super::common::*;
use super::services;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An HTTP client for the cluster's APIs, with a timeout.
/// The status and body of a GET (status 0 and the error when it cannot be made).
pub fn http_status(url: &str) -> (u16, String) {
    match reqwest::blocking::get(url) {
        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Kills its process when dropped, so that a failing test leaves nothing behind.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One cluster at a time: each is a broker, a Redis and five processes, and two cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Cluster {
    _serial: std::sync::MutexGuard<'static, ()>,
    pub kafka: services::TestKafka,
    pub redis: services::TestRedis,
    pub prefix: String,
    pub dir: tempfile::TempDir,
    /// `KAFKA_PROPERTIES` for every process of the cluster, if set.
    pub kafka_properties: Option<String>,
    /// `READY_TOPIC_PER_ZONE` (true unless a test plays the old system's workers).
    pub ready_per_zone: bool,
    /// `KAFKA_PARTITIONS` of the cluster's topics.
    pub partitions: u32,
}

impl Drop for Cluster {
    /// On a failure, show the end of every process's log.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if let Ok(keep) = std::env::var("ORCH_TEST_KEEP_LOGS") {
            let to = std::path::Path::new(&keep).join(&self.prefix);
            let _ = std::fs::create_dir_all(&to);
            for e in std::fs::read_dir(self.dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let _ = std::fs::copy(e.path(), to.join(e.file_name()));
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!("--- {} (last lines)", e.path().display());
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

impl Cluster {
    pub fn new(name: &str) -> Cluster {
        let serial = SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Cluster {
            _serial: serial,
            kafka: services::kafka(),
            redis: services::redis(),
            prefix: services::unique_prefix(name),
            dir: tempfile::tempdir().unwrap(),
            kafka_properties: None,
            ready_per_zone: true,
            partitions: 2,
        }
    }

    /// The environment every process of this cluster shares (its own topics and Redis keys).
    pub fn env(&self, cmd: &mut Command) {
        let p = &self.prefix;
        cmd.env("KAFKA_BOOTSTRAP", &self.kafka.bootstrap)
            .env("REDIS_URL", &self.redis.url)
            .env("REDIS_PREFIX", p)
            .env("TOPIC_READY", format!("{p}.ready"))
            .env("TOPIC_LOADED", format!("{p}.loaded"))
            .env("TOPIC_PROGRESS", format!("{p}.progress"))
            .env("TOPIC_FAILED", format!("{p}.failed"))
            .env("TOPIC_DLQ", format!("{p}.dlq"))
            .env("TOPIC_CONTROL", format!("{p}.control"))
            .env("READY_TOPIC_PER_ZONE", self.ready_per_zone.to_string())
            .env("KAFKA_PARTITIONS", self.partitions.to_string())
            .env("LOG_LEVEL", "info")
            .env_remove("HANDLER")
            .env_remove("MAX_WORKERS")
            .env_remove("KAFKA_PROPERTIES");
        if let Some(p) = &self.kafka_properties {
            cmd.env("KAFKA_PROPERTIES", p);
        }
    }

    /// `orchestrator serve`, with `objects` as OBJECTS_PATH if given.
    pub fn serve(&self, objects: Option<&Path>, extra: &[&str], log: &str) -> Proc {
        let mut cmd = Command::new(bin());
        self.env(&mut cmd);
        cmd.args(["serve", "--http", "127.0.0.1:0"]);
        // Short leases and start timeouts so that the kill tests finish quickly, unless given.
        for (flag, value) in [("--lease-seconds", "3"), ("--start-timeout-seconds", "8")] {
            if !extra.contains(&flag) {
                cmd.args([flag, value]);
            }
        }
        cmd.args(extra).env_remove("OBJECTS_PATH");
        if let Some(objects) = objects {
            cmd.env("OBJECTS_PATH", objects);
        }
        let log = std::fs::File::create(self.dir.path().join(log)).unwrap();
        Proc(cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap())
    }

    pub fn worker(&self, zone: &str, handler: &str, log: &str) -> Proc {
        self.worker_with(zone, handler, log, &[])
    }

    /// A worker of `zone` with more environment variables (`TASK_TIMEOUT_SECONDS`, …).
    pub fn worker_with(&self, zone: &str, handler: &str, log: &str, env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(workspace_bin(&format!("{zone}-worker")));
        self.env(&mut cmd);
        cmd.envs(env.iter().copied());
        cmd.env("HANDLER", handler)
            .env("MAX_WORKERS", "3")
            .env("HEARTBEAT_SECONDS", "1")
            .env("WORKER_HTTP_ADDR", "127.0.0.1:0")
            .env("WORKER_ID", log);
        let log = std::fs::File::create(self.dir.path().join(log)).unwrap();
        Proc(cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The base URL `serve` printed in its log (it listens on a free port).
    pub fn http_base(&self, log: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default();
            if let Some(at) = text.find("on http://") {
                let rest = &text[at + 3..];
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                return rest[..end].to_string();
            }
            assert!(Instant::now() < deadline, "serve did not listen: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the cluster's log `log` shows `line` within a minute.
    pub fn wait_for_line(&self, log: &str, line: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default();
            if text.contains(line) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Waits until `/health/readiness` answers 200 (the serve at `base` is the writer).
    pub fn wait_ready(&self, base: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = reqwest::blocking::get(format!("{base}/health/readiness"))
                .is_ok_and(|r| r.status().as_u16() == 200);
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "{base} never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `orchestrator status ARGS` on the cluster's store.
    pub fn status_of(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec![
            "status",
            "--store",
            &self.redis.url,
            "--redis-prefix",
            &self.prefix,
        ];
        all.extend_from_slice(args);
        orchestrator(&all)
    }

    pub fn status(&self) -> serde_json::Value {
        let out = self.status_of(&["--json"]);
        if !out.status.success() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Waits until the latest run is finished; returns its status.
    pub fn wait_finished(&self, limit: Duration) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.status();
            if s["run"]["status"] == "finished" {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the run did not finish in time: {}",
                s["run"]["summary"]
            );
            std::thread::sleep(Duration::from_millis(1000));
        }
    }

    /// Waits until the latest run has at least `n` objects stored as loaded.
    pub fn wait_loaded(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let s = self.status();
            if s["objects"].is_array() && ids_in_state(&s, "loaded").len() >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no progress: {}",
                s["run"]["summary"]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn workers(&self, handler: &str) -> Vec<Proc> {
        ["ingestion", "standardization", "application"]
            .iter()
            .map(|z| self.worker(z, handler, &format!("{z}.log")))
            .collect()
    }
}

/// A message read back from a topic: its JSON and its headers.
pub struct Read {
    pub value: serde_json::Value,
    pub headers: std::collections::HashMap<String, String>,
    /// The producer's timestamp, in Unix milliseconds.
    pub timestamp_ms: i64,
}

impl Cluster {
    /// The cluster's topic `{prefix}.{suffix}`.
    pub fn topic(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.prefix)
    }

    /// Waits until each of these processes' logs says its last rebalance gave it partitions.
    pub fn wait_assigned(&self, logs: &[&str], within: Duration) {
        let paths: Vec<PathBuf> = logs.iter().map(|l| self.dir.path().join(l)).collect();
        services::wait_assigned(&paths, within);
    }

    /// Every message of one of the cluster's topics: each partition read from its start up to
    /// its end as it is now (its high watermark).
    pub fn read_topic(&self, suffix: &str) -> Vec<Read> {
        use rdkafka::Message;
        use rdkafka::consumer::{Consumer, StreamConsumer};
        use rdkafka::message::Headers;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let consumer: StreamConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &self.kafka.bootstrap)
                .set("group.id", format!("{}-observer-{suffix}", self.prefix))
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "10")
                .create()
                .unwrap();
            // Every partition from the start, by assignment: no group to join.
            let topic = self.topic(suffix);
            let metadata = consumer
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .unwrap();
            let mut list = rdkafka::TopicPartitionList::new();
            let mut remaining: std::collections::HashMap<i32, i64> = Default::default();
            for t in metadata.topics() {
                for p in t.partitions() {
                    let (low, high) = consumer
                        .fetch_watermarks(&topic, p.id(), Duration::from_secs(10))
                        .unwrap();
                    if high > low {
                        remaining.insert(p.id(), high);
                    }
                    list.add_partition_offset(&topic, p.id(), rdkafka::Offset::Beginning)
                        .unwrap();
                }
            }
            assert!(list.count() > 0, "topic {topic} has no partitions");
            consumer.assign(&list).unwrap();
            let mut out = Vec::new();
            while !remaining.is_empty() {
                let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
                    .await
                    .unwrap_or_else(|_| panic!("{topic}: stalled with {remaining:?} to read"))
                    .unwrap();
                if remaining
                    .get(&m.partition())
                    .is_some_and(|high| m.offset() + 1 >= *high)
                {
                    remaining.remove(&m.partition());
                }
                let value = serde_json::from_slice(m.payload().unwrap_or_default())
                    .unwrap_or(serde_json::Value::Null);
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                let v = x.value.map(|v| String::from_utf8_lossy(v).into_owned());
                                (x.key.to_string(), v.unwrap_or_default())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let timestamp_ms = m.timestamp().to_millis().unwrap_or(0);
                out.push(Read {
                    value,
                    headers,
                    timestamp_ms,
                });
            }
            out
        })
    }

    /// Sends raw payloads to one of the cluster's topics.
    pub fn produce(&self, suffix: &str, payloads: &[&str]) {
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let producer: FutureProducer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &self.kafka.bootstrap)
                .create()
                .unwrap();
            let topic = self.topic(suffix);
            let (producer, topic) = (&producer, &topic);
            // Many in flight at once, as a busy producer sends them.
            let sends = payloads.iter().map(|p| async move {
                producer
                    .send(
                        FutureRecord::<(), _>::to(topic).payload(*p),
                        Duration::from_secs(30),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .unwrap();
            });
            futures::future::join_all(sends).await;
        })
    }
}
