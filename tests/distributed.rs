//! The distributed mode end to end: `orchestrator serve` and the three worker binaries as
//! separate processes, on a real Kafka-protocol broker (Tansu) and a real redis-server (faults:
//! `distributed_faults.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use cluster::{Cluster, Read, http_status};
use common::*;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

#[test]
fn a_sample_graph_completes_every_object_after_its_parents() {
    let cluster = Cluster::new("sample");
    let log = cluster.dir.path().join("handler.log");
    let handler = logging_handler(cluster.dir.path(), &log, "0.02");
    let file = fixture("layered.json");
    let _serve = cluster.serve(Some(&file), &[], "serve.log");
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
fn two_ingestion_workers_share_the_load() {
    let cluster = Cluster::new("share");
    let file = generated(cluster.dir.path(), 120, 5);
    // Both workers in the group, each with a partition, before there is any work: a run this
    // short could otherwise end before the group has rebalanced onto the second one.
    let mut workers = cluster.workers("simulate:100");
    workers.push(cluster.worker("ingestion", "simulate:100", "ingestion-2.log"));
    cluster.wait_assigned(
        &["ingestion.log", "ingestion-2.log"],
        Duration::from_secs(60),
    );
    let _serve = cluster.serve(Some(&file), &[], "serve.log");
    let status = cluster.wait_finished(Duration::from_secs(180));
    assert_eq!(status["run"]["summary"]["loaded"], 120, "{status}");
    drop(workers);
    // Each ingestion worker answered some of the raw objects: count results by worker id.
    let results: Vec<serde_json::Value> = cluster
        .read_topic("loaded")
        .into_iter()
        .map(|r| r.value)
        .collect();
    let by_worker: HashMap<String, usize> =
        results
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

#[test]
fn a_worker_idle_for_want_of_partitions_does_not_rejoin_while_the_others_work() {
    let cluster = Cluster::new("idle");
    // 180 raw objects of 1 s each on two partitions (three tasks per worker): about 30 s in
    // which the third ingestion worker holds nothing while events wait, past its rejoin watch's
    // 15 s, and the partitions' owners commit as they go.
    let file = generated(cluster.dir.path(), 450, 5);
    let logs = ["ingestion-1.log", "ingestion-2.log", "ingestion-3.log"];
    let _raw: Vec<_> = logs
        .iter()
        .map(|log| cluster.worker("ingestion", "simulate:1000", log))
        .collect();
    let _others = [
        cluster.worker("standardization", "simulate:0", "std.log"),
        cluster.worker("application", "simulate:0", "app.log"),
    ];
    let read = |log: &str| std::fs::read_to_string(cluster.dir().join(log)).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !logs.iter().all(|l| read(l).contains("partitions assigned")) {
        assert!(Instant::now() < deadline, "the workers never joined");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3)); // the last member's rebalance settles
    let _serve = cluster.serve(Some(&file), &[], "serve.log");
    let status = cluster.wait_finished(Duration::from_secs(180));
    assert_eq!(status["run"]["summary"]["loaded"], 450, "{status}");
    let texts: Vec<String> = logs.iter().map(|l| read(l)).collect();
    let idle = texts
        .iter()
        .filter(|t| {
            t.lines()
                .rfind(|l| l.contains("partitions assigned"))
                .is_some_and(|l| l.contains("count=0"))
        })
        .count();
    assert_eq!(idle, 1, "one of three members of two partitions is idle");
    for (log, text) in logs.iter().zip(&texts) {
        assert!(
            !text.contains("joining the group again"),
            "{log} rejoined while the partitions' owners were working:\n{text}"
        );
    }
}

#[test]
fn poison_messages_go_to_the_dlq_and_objects_failed_for_good_to_the_failed_topic() {
    let cluster = Cluster::new("poison");
    let file = fixture("layered.json");
    // 2002 fails for good (exit 65: not retryable); 3000, 3005 and 3006 need it.
    let fail = script(
        cluster.dir(),
        "fail.sh",
        "cat > /dev/null\n[ \"$ORCH_OBJECT_ID\" = 2002 ] && exit 65\nexit 0",
    );
    let _serve = cluster.serve(Some(&file), &[], "serve.log");
    let base = cluster.http_base("serve.log");
    // The run exists once the topics do: then poison the results topic.
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.status().is_null() {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.produce(
        "loaded",
        &[
            "not json at all",
            r#"{"event":"ObjectLoaded","id":"oops"}"#,
            r#"{"event":"ObjectLoaded","id":1001,"status":"loaded","zone":"1-Raw","info":"","run_id":"run-unknown"}"#,
        ],
    );
    // And a Ready event no worker can read.
    cluster.produce("ready.raw", &["{\"event\":\"ObjectReady\",\"id\":"]);
    let _workers = [
        cluster.worker("ingestion", "simulate:5", "ingestion.log"),
        cluster.worker(
            "standardization",
            &format!("command:{}", fail.display()),
            "standardization.log",
        ),
        cluster.worker("application", "simulate:5", "application.log"),
    ];
    let status = cluster.wait_finished(Duration::from_secs(120));
    let summary = &status["run"]["summary"];
    assert_eq!(summary["loaded"], 5, "{status}");
    assert_eq!(summary["failed"], 1, "{status}");
    assert_eq!(summary["upstream_failed"], 3, "{status}");

    let dlq = cluster.read_topic("dlq");
    let rejected: Vec<&serde_json::Value> = dlq
        .iter()
        .map(|r| &r.value)
        .filter(|v| v["event"] == "MessageRejected")
        .collect();
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    let on = |suffix: &str| {
        rejected
            .iter()
            .filter(|v| v["topic"].as_str().is_some_and(|t| t.ends_with(suffix)))
            .count()
    };
    assert_eq!((on(".loaded"), on(".ready.raw")), (2, 1), "{rejected:?}");
    assert!(rejected.iter().all(|v| {
        v["schema_version"] == 1
            && v["reason"]
                .as_str()
                .is_some_and(|r| r.contains("unreadable"))
    }));
    assert!(rejected.iter().any(|v| v["payload"] == "not json at all"));
    let run_id = status["run"]["run_id"].as_str().unwrap();
    for topic in ["dlq", "failed"] {
        let read = cluster.read_topic(topic);
        let failed: Vec<&Read> = read
            .iter()
            .filter(|r| r.value["event"] == "ObjectFailed")
            .collect();
        assert_eq!(failed.len(), 1, "{topic}");
        let f = &failed[0];
        assert_eq!(f.value["id"], 2002);
        assert_eq!(f.value["run_id"], run_id);
        assert_eq!(f.value["upstream_failed"], 3);
        assert!(
            f.value["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{}",
            f.value
        );
        assert_eq!(f.value["schema_version"], 1);
        let trace = f.headers.get("traceparent").expect("a traceparent header");
        assert!(trace.starts_with("00-") && trace.len() == 55, "{trace}");
    }
    // Counted in the orchestrator's metrics.
    let (_, metrics) = http_status(&format!("{base}/metrics"));
    assert!(
        metrics.contains("orchestrator_messages_rejected_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("orchestrator_results_ignored_total{reason=\"unknown_run\"} 1"),
        "{metrics}"
    );
    // And in the worker's that set it aside.
    let worker = cluster.http_base("ingestion.log");
    let (_, metrics) = http_status(&format!("{worker}/metrics"));
    assert!(
        metrics.contains("orchestrator_worker_messages_rejected_total{zone=\"1-Raw\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_standby_serve_takes_over_when_the_writer_is_killed() {
    let cluster = Cluster::new("standby");
    let file = generated(cluster.dir(), 60, 5);
    let log = cluster.dir().join("handler.log");
    let handler = logging_handler(cluster.dir(), &log, "0.1");
    let lease = ["--writer-lease-seconds", "3"];
    let mut first = cluster.serve(Some(&file), &lease, "serve-1.log");
    let base1 = cluster.http_base("serve-1.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_status(&format!("{base1}/health/readiness")).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the first serve never became ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The second stands by: alive, not ready, and its runs API refuses work.
    let _second = cluster.serve(Some(&file), &lease, "serve-2.log");
    let base2 = cluster.http_base("serve-2.log");
    assert!(
        cluster.wait_for_line("serve-2.log", "standing by"),
        "the second serve did not stand by"
    );
    let (code, body) = http_status(&format!("{base2}/health/readiness"));
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("standby"), "{body}");
    assert_eq!(http_status(&format!("{base2}/health/liveness")).0, 200);
    assert_eq!(http_status(&format!("{base2}/api/runs")).0, 503);

    let _workers = cluster.workers(&handler);
    let deadline = Instant::now() + Duration::from_secs(120);
    while log_lines(&log).iter().filter(|l| l.2 == "end").count() < 20 {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.0.kill().unwrap(); // SIGKILL: the lease is not released
    first.0.wait().unwrap();
    let loaded: HashSet<u64> = ids_in_state(&cluster.status(), "loaded")
        .into_iter()
        .collect();
    assert!(loaded.len() < 60, "{} loaded before the kill", loaded.len());
    std::thread::sleep(Duration::from_millis(500));
    let before = log_lines(&log).len();
    let status = cluster.wait_finished(Duration::from_secs(180));
    assert_eq!(status["run"]["summary"]["loaded"], 60, "{status}");
    assert_eq!(status["runs"].as_array().map(|r| r.len()), Some(1));
    let after = log_lines(&log);
    assert_none_started_again(&after[before..], &loaded);
    assert_dependency_order(&after, &parents_of(&file));
    let second_log = std::fs::read_to_string(cluster.dir().join("serve-2.log")).unwrap();
    assert!(
        second_log.contains("this orchestrator is the writer"),
        "{second_log}"
    );
    assert_eq!(http_status(&format!("{base2}/health/readiness")).0, 200);
}

/// The object the old worker fails, the old way, on its first [`LEGACY_FAILURES`] attempts.
const LEGACY_FAILS: u64 = 2001;
const LEGACY_FAILURES: usize = 2;

/// Plays one of the old system's Python workers until `stop`: reads every Ready event of the
/// shared topic in its own group, and answers each with the old result shape only (no attempt, no
/// Started, no heartbeats; `info` a string or null, `zone` now and then one of its own). Its
/// first attempts of [`LEGACY_FAILS`] fail as theirs do: a failed result on the failed and DLQ
/// topics, never on the loaded one, published only if the object is not yet in the Redis set
/// `{REDIS_PREFIX}:failed`, which it then joins (theirs publish a failure once ever). Returns
/// how many Ready events it answered.
fn legacy_worker(cluster: &Cluster, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> usize {
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use std::sync::atomic::Ordering;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let consumer: StreamConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &cluster.kafka.bootstrap)
            .set("group.id", format!("{}-legacy", cluster.prefix))
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "10")
            .create()
            .unwrap();
        consumer.subscribe(&[&cluster.topic("ready")]).unwrap();
        let producer: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &cluster.kafka.bootstrap)
            .create()
            .unwrap();
        let mut redis = redis::Client::open(cluster.redis.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let failed_set = format!("{}:failed", cluster.prefix);
        let mut answered = 0;
        let mut failures = 0;
        while !stop.load(Ordering::Relaxed) {
            let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await
            else {
                continue;
            };
            let ready: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            // Python's None where there is nothing to say, as some old workers send.
            let info = match answered % 2 {
                0 => serde_json::json!("loaded by the old worker"),
                _ => serde_json::Value::Null,
            };
            let mut result = serde_json::json!({
                "event": "ObjectLoaded",
                "id": ready["id"],
                "status": "loaded",
                "zone": ready["zone"],
                "info": info,
                "run_id": ready["run_id"],
            });
            // And one that names its zone its own way.
            if answered % 3 == 2 {
                result["zone"] = serde_json::json!("Bronze");
            }
            let mut topics = vec![cluster.topic("loaded")];
            if ready["id"] == LEGACY_FAILS && failures < LEGACY_FAILURES {
                failures += 1;
                result["status"] = serde_json::json!("failed");
                result["info"] = serde_json::json!("source file locked");
                let id = ready["id"].to_string();
                let known: bool = redis::cmd("SISMEMBER")
                    .arg(&failed_set)
                    .arg(&id)
                    .query(&mut redis)
                    .unwrap();
                let _: i64 = redis::cmd("SADD")
                    .arg(&failed_set)
                    .arg(&id)
                    .query(&mut redis)
                    .unwrap();
                topics = if known {
                    Vec::new()
                } else {
                    vec![cluster.topic("failed"), cluster.topic("dlq")]
                };
            }
            let result = result.to_string();
            let key = ready["id"].to_string();
            for topic in &topics {
                producer
                    .send(
                        FutureRecord::to(topic).key(&key).payload(&result),
                        Duration::from_secs(10),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .unwrap();
            }
            answered += 1;
        }
        answered
    })
}

#[test]
fn the_old_systems_workers_keep_working_on_the_shared_ready_topic() {
    let mut cluster = Cluster::new("legacy");
    cluster.ready_per_zone = false;
    let file = fixture("layered.json");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _serve = cluster.serve(Some(&file), &[], "serve.log");
    let answered = std::thread::scope(|scope| {
        let worker = scope.spawn(|| legacy_worker(&cluster, stop.clone()));
        let status = cluster.wait_finished(Duration::from_secs(120));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(status["run"]["summary"]["loaded"], 9, "{status}");
        // The old way of failing was read at once (not after the 300 s start timeout), each
        // time: the orchestrator took 2001 out of their set of failures before sending it again.
        assert_eq!(status["run"]["summary"]["retries"], 2, "{status}");
        worker.join().unwrap()
    });
    assert_eq!(
        answered, 11,
        "one Ready event per object, and 2001's two retries"
    );
    // The Ready events keep the old fields and types.
    let ready = cluster.read_topic("ready");
    assert_eq!(ready.len(), 11);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for r in &ready {
        let v = &r.value;
        assert_eq!(v["event"], "ObjectReady", "{v}");
        assert!(
            v["id"].is_u64() && v["name"].is_string() && v["run_id"].is_string(),
            "{v}"
        );
        assert!(
            ["1-Raw", "2-Standardized", "3-Application"].contains(&v["zone"].as_str().unwrap()),
            "{v}"
        );
        assert_eq!(v["preflight_fail"], false, "{v}");
        let ts = v["ts"].as_u64().unwrap();
        assert!(ts + 300 > now && ts <= now + 5, "ts in Unix seconds: {v}");
    }
    // Every object after its parents, with the old results (no attempt) taken as current.
    let results = cluster.read_topic("loaded");
    assert!(results.iter().all(|r| r.value.get("attempt").is_none()));
    let order: Vec<(u64, u64)> = ready
        .iter()
        .map(|r| (r.timestamp_ms as u64, r.value["id"].as_u64().unwrap()))
        .collect();
    let loaded_at: HashMap<u64, u64> = results
        .iter()
        .map(|r| (r.value["id"].as_u64().unwrap(), r.timestamp_ms as u64))
        .collect();
    for (id, parents) in parents_of(&file) {
        let ready_at = order.iter().find(|(_, i)| *i == id).unwrap().0;
        for p in parents {
            assert!(
                loaded_at[&p] <= ready_at,
                "{id} released before its parent {p} loaded"
            );
        }
    }
}
