//! The distributed mode end to end: `orchestrator serve` and the three worker binaries as
//! separate processes, on a real Kafka-protocol broker (Tansu) and a real redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use common::*;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A binary of the workspace, next to `orchestrator` (tools/test.sh builds them all).
fn workspace_bin(name: &str) -> PathBuf {
    let path = Path::new(bin()).with_file_name(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Kills its process when dropped, so that a failing test leaves nothing behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One cluster at a time: each is a broker, a Redis and five processes, and two cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Cluster {
    _serial: std::sync::MutexGuard<'static, ()>,
    kafka: services::TestKafka,
    redis: services::TestRedis,
    prefix: String,
    dir: tempfile::TempDir,
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
    fn new(name: &str) -> Cluster {
        let serial = SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Cluster {
            _serial: serial,
            kafka: services::kafka(),
            redis: services::redis(),
            prefix: services::unique_prefix(name),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The environment every process of this cluster shares (its own topics and Redis keys).
    fn env(&self, cmd: &mut Command) {
        let p = &self.prefix;
        cmd.env("KAFKA_BOOTSTRAP", &self.kafka.bootstrap)
            .env("REDIS_URL", &self.redis.url)
            .env("REDIS_PREFIX", p)
            .env("TOPIC_READY", format!("{p}.ready"))
            .env("TOPIC_LOADED", format!("{p}.loaded"))
            .env("TOPIC_PROGRESS", format!("{p}.progress"))
            .env("TOPIC_FAILED", format!("{p}.failed"))
            .env("TOPIC_DLQ", format!("{p}.dlq"))
            .env("READY_TOPIC_PER_ZONE", "true")
            .env("KAFKA_PARTITIONS", "2")
            .env("LOG_LEVEL", "info")
            .env_remove("HANDLER")
            .env_remove("MAX_WORKERS");
    }

    fn serve(&self, objects: &Path, extra: &[&str], log: &str) -> Proc {
        let mut cmd = Command::new(bin());
        self.env(&mut cmd);
        cmd.args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--lease-seconds",
            "3",
            "--start-timeout-seconds",
            "8",
        ])
        .args(extra)
        .env("OBJECTS_PATH", objects);
        let log = std::fs::File::create(self.dir.path().join(log)).unwrap();
        Proc(cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap())
    }

    fn worker(&self, zone: &str, handler: &str, log: &str) -> Proc {
        let mut cmd = Command::new(workspace_bin(&format!("{zone}-worker")));
        self.env(&mut cmd);
        cmd.env("HANDLER", handler)
            .env("MAX_WORKERS", "3")
            .env("HEARTBEAT_SECONDS", "1")
            .env("WORKER_ID", log);
        let log = std::fs::File::create(self.dir.path().join(log)).unwrap();
        Proc(cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap())
    }

    fn status(&self) -> serde_json::Value {
        let out = orchestrator(&[
            "status",
            "--store",
            &self.redis.url,
            "--redis-prefix",
            &self.prefix,
            "--json",
        ]);
        if !out.status.success() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Waits until the latest run is finished; returns its status.
    fn wait_finished(&self, limit: Duration) -> serde_json::Value {
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
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn workers(&self, handler: &str) -> Vec<Proc> {
        ["ingestion", "standardization", "application"]
            .iter()
            .map(|z| self.worker(z, handler, &format!("{z}.log")))
            .collect()
    }
}

fn generated(dir: &Path, objects: usize) -> PathBuf {
    let file = dir.join("objects.json");
    let out = orchestrator(&[
        "generate",
        "--objects",
        &objects.to_string(),
        "--seed",
        "5",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    file
}

#[test]
fn a_sample_graph_completes_every_object_after_its_parents() {
    let cluster = Cluster::new("sample");
    let log = cluster.dir.path().join("handler.log");
    let handler = logging_handler(cluster.dir.path(), &log, "0.02");
    let file = fixture("layered.json");
    let _serve = cluster.serve(&file, &[], "serve.log");
    let _workers = cluster.workers(&handler);
    let status = cluster.wait_finished(Duration::from_secs(120));
    assert_eq!(status["run"]["summary"]["loaded"], 9, "{status}");
    let lines = log_lines(&log);
    let starts: Vec<u64> = lines
        .iter()
        .filter(|l| l.2 == "start")
        .map(|l| l.0)
        .collect();
    assert_eq!(starts.iter().collect::<HashSet<_>>().len(), 9);
    assert_dependency_order(&lines, &parents_of(&file));
}

#[test]
#[ignore = "flaky on a fresh CI clone (assertion on which worker ran what); see the open distributed-mode issue"]
fn two_ingestion_workers_share_the_load() {
    let cluster = Cluster::new("share");
    let file = generated(cluster.dir.path(), 120);
    let _serve = cluster.serve(&file, &[], "serve.log");
    let mut workers = cluster.workers("simulate:60");
    workers.push(cluster.worker("ingestion", "simulate:60", "ingestion-2.log"));
    let status = cluster.wait_finished(Duration::from_secs(180));
    assert_eq!(status["run"]["summary"]["loaded"], 120, "{status}");
    drop(workers);
    // Each ingestion worker answered some of the raw objects: count results by worker id.
    let consumer = rdkafka_results(&cluster);
    let by_worker: HashMap<String, usize> =
        consumer
            .iter()
            .filter(|r| r["zone"] == "1-Raw")
            .fold(HashMap::new(), |mut m, r| {
                *m.entry(r["worker"].as_str().unwrap_or("").to_string())
                    .or_default() += 1;
                m
            });
    assert!(
        by_worker.get("ingestion.log").copied().unwrap_or(0) > 0,
        "{by_worker:?}"
    );
    assert!(
        by_worker.get("ingestion-2.log").copied().unwrap_or(0) > 0,
        "{by_worker:?}"
    );
}

/// Every result on the cluster's results topic, read from the start by an observer of its own.
fn rdkafka_results(cluster: &Cluster) -> Vec<serde_json::Value> {
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let consumer: StreamConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &cluster.kafka.bootstrap)
            .set("group.id", format!("{}-observer", cluster.prefix))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .unwrap();
        consumer
            .subscribe(&[format!("{}.loaded", cluster.prefix).as_str()])
            .unwrap();
        let mut out = Vec::new();
        // The group join takes a moment; after the first message, a second of quiet ends it.
        let mut patience = Duration::from_secs(30);
        while let Ok(Ok(m)) = tokio::time::timeout(patience, consumer.recv()).await {
            if let Ok(v) = serde_json::from_slice(m.payload().unwrap_or_default()) {
                out.push(v);
            }
            patience = Duration::from_secs(2);
        }
        out
    })
}

#[test]
fn serve_killed_with_sigkill_restarts_and_never_dispatches_a_loaded_object_again() {
    let cluster = Cluster::new("killserve");
    let file = generated(cluster.dir.path(), 60);
    let log = cluster.dir.path().join("handler.log");
    let handler = logging_handler(cluster.dir.path(), &log, "0.1");
    let mut serve = cluster.serve(&file, &[], "serve-1.log");
    let _workers = cluster.workers(&handler);
    let deadline = Instant::now() + Duration::from_secs(120);
    while log_lines(&log).iter().filter(|l| l.2 == "end").count() < 20 {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    serve.0.kill().unwrap(); // SIGKILL
    serve.0.wait().unwrap();
    let loaded: HashSet<u64> = ids_in_state(&cluster.status(), "loaded")
        .into_iter()
        .collect();
    assert!(
        !loaded.is_empty() && loaded.len() < 60,
        "{} loaded",
        loaded.len()
    );
    // Let the workers finish what they hold, then mark the log.
    std::thread::sleep(Duration::from_millis(500));
    let before = log_lines(&log).len();
    let _serve = cluster.serve(&file, &[], "serve-2.log");
    let status = cluster.wait_finished(Duration::from_secs(180));
    assert_eq!(status["run"]["summary"]["loaded"], 60, "{status}");
    assert_eq!(
        status["runs"].as_array().map(|r| r.len()),
        Some(1),
        "the restart continued the run, not a new one"
    );
    let after = log_lines(&log);
    for (id, attempt, what) in &after[before..] {
        assert!(
            !(what == "start" && loaded.contains(id)),
            "object {id} (attempt {attempt}) ran again after it had loaded"
        );
    }
    assert_dependency_order(&after, &parents_of(&file));
}

#[test]
#[ignore = "flaky on a fresh CI clone (assertion on which worker ran what); see the open distributed-mode issue"]
fn a_worker_killed_mid_task_has_its_attempt_run_again() {
    let cluster = Cluster::new("killworker");
    let file = fixture("layered.json");
    let log = cluster.dir.path().join("handler.log");
    let handler = logging_handler(cluster.dir.path(), &log, "2");
    let _serve = cluster.serve(&file, &[], "serve.log");
    let mut raw = cluster.worker("ingestion", &handler, "ingestion-1.log");
    let _others = [
        cluster.worker("standardization", "simulate:10", "std.log"),
        cluster.worker("application", "simulate:10", "app.log"),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    while log_lines(&log).iter().filter(|l| l.2 == "start").count() < 3 {
        assert!(Instant::now() < deadline, "the raw objects never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    raw.0.kill().unwrap(); // SIGKILL, mid-task
    raw.0.wait().unwrap();
    let _raw2 = cluster.worker("ingestion", &handler, "ingestion-2.log");
    let status = cluster.wait_finished(Duration::from_secs(120));
    assert_eq!(status["run"]["summary"]["loaded"], 9, "{status}");
    // The raw objects started twice: once in the killed worker, once after.
    let lines = log_lines(&log);
    for id in [1001, 1002, 1005] {
        let starts = lines.iter().filter(|l| l.0 == id && l.2 == "start").count();
        assert!(starts >= 2, "object {id} started {starts} times: {lines:?}");
    }
}
