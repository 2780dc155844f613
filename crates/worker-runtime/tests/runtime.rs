//! The worker runtime on the in-process bus: bounded concurrency, Started and heartbeats,
//! timeouts, graceful shutdown; and the `command` handler with real processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use orchestrator_bus::{Bus, MemoryBus};
use orchestrator_protocol::{
    AttemptStatus, ObjectId, ProgressKind, RawJson, ReadyEvent, ResultEvent, RunId, SCHEMA_VERSION,
    Zone,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use worker_runtime::{Handler, HandlerSpec, Outcome, Ran, WorkerConfig, WorkerStats, run_worker};

fn task(id: u64) -> ReadyEvent {
    ReadyEvent {
        event: "ObjectReady".into(),
        id: ObjectId(id),
        zone: Zone::Raw,
        name: format!("o{id}"),
        run_id: RunId::new("run-t"),
        ts: 0,
        preflight_fail: false,
        attempt: 2,
        graph_version: "g".into(),
        object: RawJson::from_string(format!("{{\"IdObjet\":{id},\"NomObjet\":\"o{id}\"}}")),
        schema_version: SCHEMA_VERSION,
    }
}

/// Sleeps, counting how many run at once.
struct Sleepy {
    ms: u64,
    now: AtomicUsize,
    max: AtomicUsize,
}

#[async_trait]
impl Handler for Sleepy {
    async fn handle(&self, _task: &ReadyEvent) -> Ran {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Outcome::Loaded {
            info: "slept".into(),
        }
        .into()
    }
    fn describe(&self) -> String {
        "sleepy".into()
    }
}

fn sleepy(ms: u64) -> Arc<Sleepy> {
    Arc::new(Sleepy {
        ms,
        now: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
    })
}

async fn results(bus: &MemoryBus, n: usize) -> Vec<ResultEvent> {
    let mut c = bus.result_consumer("t").await.unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        let batch = tokio::time::timeout(Duration::from_secs(20), c.next_batch(100))
            .await
            .expect("results in time")
            .unwrap();
        out.extend(batch.into_iter().map(|d| d.event));
    }
    out
}

fn config(max_workers: usize) -> WorkerConfig {
    let mut c = WorkerConfig::new(Zone::Raw);
    c.max_workers = max_workers;
    c.heartbeat_interval = Duration::from_millis(100);
    c.started_after = Duration::ZERO;
    c
}

/// A worker for `config`'s zone on `bus`, stopped by `stop`; with its metrics.
fn spawn_worker(
    bus: &Arc<MemoryBus>,
    handler: Arc<dyn Handler>,
    config: WorkerConfig,
    stop: &CancellationToken,
) -> (
    tokio::task::JoinHandle<Result<(), worker_runtime::WorkerError>>,
    Arc<WorkerStats>,
) {
    let stats = Arc::new(WorkerStats::new(config.zone).unwrap());
    let worker = tokio::spawn(run_worker(
        bus.clone(),
        handler,
        config,
        stats.clone(),
        stop.clone(),
    ));
    (worker, stats)
}

#[tokio::test]
async fn runs_at_most_max_workers_at_once_and_reports_every_task() {
    let bus = Arc::new(MemoryBus::new());
    let handler = sleepy(30);
    let stop = CancellationToken::new();
    let (worker, stats) = spawn_worker(&bus, handler.clone(), config(3), &stop);
    bus.publish_ready((0..20).map(|i| task(1000 + i)).collect())
        .await
        .unwrap();
    let got = results(&bus, 20).await;
    assert!(
        got.iter().all(|r| r.status == AttemptStatus::Loaded
            && r.attempt == Some(2)
            && r.duration_ms >= 30)
    );
    assert_eq!(handler.max.load(Ordering::SeqCst), 3);
    let mut progress = bus.progress_consumer("t").await.unwrap();
    let events = progress.next_batch(1000).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|p| p.event.event == ProgressKind::AttemptStarted)
            .count(),
        20
    );
    stop.cancel();
    worker.await.unwrap().unwrap();
    assert_eq!(stats.loaded.get(), 20);
    assert_eq!(stats.duration.get_sample_count(), 20);
}

#[tokio::test]
async fn a_task_quicker_than_started_after_reports_only_its_result() {
    let bus = Arc::new(MemoryBus::new());
    let stop = CancellationToken::new();
    let mut c = config(4);
    c.started_after = Duration::from_millis(200);
    let (worker, _) = spawn_worker(&bus, sleepy(0), c.clone(), &stop);
    bus.publish_ready((0..10).map(|i| task(1000 + i)).collect())
        .await
        .unwrap();
    assert_eq!(results(&bus, 10).await.len(), 10);
    // A slow one still says it started, once it has run `started_after`.
    let slow_config = WorkerConfig {
        zone: Zone::Standardized,
        group: "slow".into(),
        ..c
    };
    let (slow, _) = spawn_worker(&bus, sleepy(600), slow_config, &stop);
    let mut t = task(2001);
    t.zone = Zone::Standardized;
    bus.publish_ready(vec![t]).await.unwrap();
    let mut progress = bus.progress_consumer("t").await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), progress.next_batch(100))
        .await
        .expect("a Started event")
        .unwrap();
    assert_eq!(first.len(), 1, "only the slow task reports Started");
    assert_eq!(first[0].event.event, ProgressKind::AttemptStarted);
    assert_eq!(first[0].event.id.0, 2001);
    stop.cancel();
    worker.await.unwrap().unwrap();
    slow.await.unwrap().unwrap();
}

#[tokio::test]
async fn heartbeats_while_running_and_times_out() {
    let bus = Arc::new(MemoryBus::new());
    let stop = CancellationToken::new();
    let mut c = config(2);
    c.task_timeout = Some(Duration::from_millis(450));
    let (worker, _) = spawn_worker(&bus, sleepy(10_000), c, &stop);
    bus.publish_ready(vec![task(1001)]).await.unwrap();
    let got = results(&bus, 1).await;
    assert_eq!(got[0].status, AttemptStatus::Failed);
    assert!(got[0].retryable);
    assert!(
        got[0].info.contains("timed out after 450 ms"),
        "{}",
        got[0].info
    );
    let mut progress = bus.progress_consumer("t").await.unwrap();
    let beats = progress
        .next_batch(100)
        .await
        .unwrap()
        .iter()
        .filter(|p| p.event.event == ProgressKind::Heartbeat)
        .count();
    assert!((3..=5).contains(&beats), "{beats} heartbeats");
    stop.cancel();
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_finishes_started_tasks_and_takes_no_more() {
    let bus = Arc::new(MemoryBus::new());
    let stop = CancellationToken::new();
    let (worker, _) = spawn_worker(&bus, sleepy(300), config(4), &stop);
    bus.publish_ready((0..4).map(|i| task(1000 + i)).collect())
        .await
        .unwrap();
    let mut progress = bus.progress_consumer("t").await.unwrap();
    let mut started = 0;
    while started < 4 {
        started += progress.next_batch(10).await.unwrap().len();
    }
    stop.cancel();
    bus.publish_ready(vec![task(2000)]).await.unwrap();
    worker.await.unwrap().unwrap();
    let got = results(&bus, 4).await;
    assert_eq!(got.len(), 4);
    assert_eq!(
        bus.ready_backlog(Zone::Raw),
        1,
        "the task sent after shutdown stays on the bus"
    );
}

#[tokio::test]
async fn an_attempt_delivered_again_runs_once() {
    let bus = Arc::new(MemoryBus::new());
    let handler = sleepy(200);
    let stop = CancellationToken::new();
    let (worker, stats) = spawn_worker(&bus, handler.clone(), config(4), &stop);
    let mut results = bus.result_consumer("t").await.unwrap();
    let mut next_result = async || {
        let batch = tokio::time::timeout(Duration::from_secs(20), results.next_batch(100))
            .await
            .expect("a result in time")
            .unwrap();
        batch
            .into_iter()
            .map(|d| d.event.attempt)
            .collect::<Vec<_>>()
    };
    // Twice while it runs, and once more after its result.
    bus.publish_ready(vec![task(1001), task(1001)])
        .await
        .unwrap();
    assert_eq!(next_result().await, [Some(2)]);
    bus.publish_ready(vec![task(1001)]).await.unwrap();
    // Another attempt of the same object is another task.
    let mut again = task(1001);
    again.attempt = 3;
    bus.publish_ready(vec![again]).await.unwrap();
    assert_eq!(next_result().await, [Some(3)]);
    stop.cancel();
    worker.await.unwrap().unwrap();
    assert_eq!(stats.loaded.get(), 2, "attempt 2 once, attempt 3 once");
    assert_eq!(stats.duplicates.get(), 2);
    assert_eq!(
        bus.ready_backlog(Zone::Raw),
        0,
        "every delivery acknowledged"
    );
}

/// Panics on object 1001, loads the others.
struct PanicsOn1001;

#[async_trait]
impl Handler for PanicsOn1001 {
    async fn handle(&self, task: &ReadyEvent) -> Ran {
        if task.id == ObjectId(1001) {
            panic!("no loader for {}", task.name);
        }
        Outcome::Loaded { info: "ok".into() }.into()
    }
    fn describe(&self) -> String {
        "panics-on-1001".into()
    }
}

#[tokio::test]
async fn a_handler_that_panics_fails_its_attempt_and_the_worker_goes_on() {
    let bus = Arc::new(MemoryBus::new());
    let stop = CancellationToken::new();
    let (worker, stats) = spawn_worker(&bus, Arc::new(PanicsOn1001), config(2), &stop);
    bus.publish_ready(vec![task(1001), task(1002)])
        .await
        .unwrap();
    let mut got = results(&bus, 2).await;
    got.sort_by_key(|r| r.id);
    assert_eq!(got[0].id, ObjectId(1001));
    assert_eq!(got[0].status, AttemptStatus::Failed);
    assert_eq!(got[0].attempt, Some(2));
    assert!(got[0].retryable);
    assert_eq!(got[0].info, "the handler panicked: no loader for o1001");
    assert_eq!(got[1].status, AttemptStatus::Loaded);
    // The next attempt of the panicked object is run, not taken for a duplicate.
    let mut again = task(1001);
    again.attempt = 3;
    bus.publish_ready(vec![again]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while stats.failed.get() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("attempt 3 run in time");
    stop.cancel();
    worker.await.unwrap().unwrap();
    assert_eq!((stats.loaded.get(), stats.failed.get()), (1, 2));
    assert_eq!(stats.in_flight.get(), 0);
    assert_eq!(stats.duplicates.get(), 0);
    assert_eq!(
        bus.ready_backlog(Zone::Raw),
        0,
        "every delivery acknowledged"
    );
}

async fn run_command(spec: &str, t: &ReadyEvent) -> Outcome {
    let spec: HandlerSpec = spec.parse().unwrap();
    spec.build(1).unwrap().handle(t).await.outcome
}

#[tokio::test]
async fn the_command_handler_passes_the_object_and_its_key() {
    let out = run_command(
        "command:sh -c 'read body; echo \"$ORCH_RUN_ID $ORCH_OBJECT_ID $ORCH_ZONE $ORCH_ATTEMPT $ORCH_IDEMPOTENCY_KEY $body\"'",
        &task(1005),
    )
    .await;
    assert_eq!(
        out,
        Outcome::Loaded {
            info: "run-t 1005 1-Raw 2 run-t/1005/2 {\"IdObjet\":1005,\"NomObjet\":\"o1005\"}"
                .into()
        }
    );
}

#[tokio::test]
async fn command_failures_carry_the_stderr_tail_and_retryability() {
    let out = run_command(
        "command:sh -c 'echo first >&2; echo \"disk full\" >&2; exit 3'",
        &task(1),
    )
    .await;
    assert_eq!(
        out,
        Outcome::Failed {
            reason: "exit 3: first\ndisk full".into(),
            retryable: true
        }
    );
    let out = run_command("command:sh -c 'echo bad row >&2; exit 65'", &task(1)).await;
    assert_eq!(
        out,
        Outcome::Failed {
            reason: "exit 65: bad row".into(),
            retryable: false
        }
    );
    let out = run_command("command:/nonexistent/loader", &task(1)).await;
    assert!(
        matches!(&out, Outcome::Failed { reason, retryable: false } if reason.contains("cannot start")),
        "{out:?}"
    );
    let long = run_command(
        "command:sh -c 'head -c 5000 /dev/zero | tr \"\\0\" x >&2; exit 1'",
        &task(1),
    )
    .await;
    assert!(
        matches!(&long, Outcome::Failed { reason, .. } if reason.len() < 900),
        "{long:?}"
    );
}

#[tokio::test]
async fn simulate_is_seeded_per_attempt() {
    let spec: HandlerSpec = "simulate:0:0.5".parse().unwrap();
    let a = spec.build(42).unwrap();
    let b = spec.build(42).unwrap();
    let mut failures = 0;
    for i in 0..200 {
        let t = task(i);
        let (x, y) = (a.handle(&t).await.outcome, b.handle(&t).await.outcome);
        assert_eq!(x, y);
        failures += usize::from(matches!(x, Outcome::Failed { .. }));
    }
    assert!(
        (60..140).contains(&failures),
        "{failures} of 200 failed at p=0.5"
    );
}
