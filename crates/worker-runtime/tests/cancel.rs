//! A cancelled run's attempts stop on the worker: a running program is killed (with what it
//! started), the attempt answered failed and not retryable, and a Ready event of that run that
//! comes later is answered without running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use orchestrator_bus::{Bus, MemoryBus};
use orchestrator_protocol::{
    AttemptStatus, ControlEvent, ObjectId, RawJson, ReadyEvent, RunId, SCHEMA_VERSION, Zone,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use worker_runtime::{HandlerSpec, WorkerConfig, WorkerStats, run_worker};

fn task(run: &str, id: u64) -> ReadyEvent {
    ReadyEvent {
        event: "ObjectReady".into(),
        id: ObjectId(id),
        zone: Zone::Raw,
        name: "o".into(),
        run_id: RunId::new(run),
        ts: 0,
        preflight_fail: false,
        attempt: 1,
        graph_version: "g".into(),
        object: RawJson::from_string("{}".into()),
        schema_version: SCHEMA_VERSION,
    }
}

/// Whether a process whose command line holds `marker` is alive.
fn running(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(marker))
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn a_cancelled_runs_program_is_killed_and_its_later_tasks_do_not_run() {
    let bus = Arc::new(MemoryBus::new());
    // A sleep no other test runs, started in the background by `sh`: both must go.
    let marker = format!("99.{}", std::process::id());
    let spec = HandlerSpec::Command {
        program: "sh".into(),
        args: vec!["-c".into(), format!("sleep {marker} & wait; echo never")],
    };
    let mut config = WorkerConfig::new(Zone::Raw);
    config.started_after = Duration::ZERO;
    let stats = Arc::new(WorkerStats::new(Zone::Raw).unwrap());
    let stop = CancellationToken::new();
    let worker = tokio::spawn(run_worker(
        bus.clone(),
        spec.build(1).unwrap(),
        config,
        stats,
        stop.clone(),
    ));
    let mut results = bus.result_consumer("t").await.unwrap();
    let mut progress = bus.progress_consumer("t").await.unwrap();
    bus.publish_ready(vec![task("run-c", 1001), task("run-other", 1002)])
        .await
        .unwrap();
    // Both started: the program is running.
    let mut started = 0;
    while started < 2 {
        started += progress.next_batch(10).await.unwrap().len();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !running(&marker) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(running(&marker), "the handler's program started");
    let cancelled_at = Instant::now();
    bus.publish_control(vec![ControlEvent::cancel_run(RunId::new("run-c"))])
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), results.next_batch(10))
        .await
        .expect("the cancelled attempt answers at once")
        .unwrap();
    assert_eq!(got.len(), 1, "only the cancelled run's attempt ended");
    let r = &got[0].event;
    assert_eq!(
        (r.id, r.status, r.retryable),
        (ObjectId(1001), AttemptStatus::Failed, false)
    );
    assert!(r.info.starts_with("cancelled"), "{}", r.info);
    assert!(cancelled_at.elapsed() < Duration::from_secs(3));
    // A later task of the cancelled run is answered without running.
    bus.publish_ready(vec![task("run-c", 1003)]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), results.next_batch(10))
        .await
        .expect("answered at once")
        .unwrap();
    assert_eq!(
        (got[0].event.id, got[0].event.duration_ms),
        (ObjectId(1003), 0)
    );
    // The other run's program still runs; the cancelled one's is gone once it is stopped too.
    bus.publish_control(vec![ControlEvent::cancel_run(RunId::new("run-other"))])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), results.next_batch(10))
        .await
        .expect("the other run cancelled too")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(&marker) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !running(&marker),
        "no program of a cancelled attempt is left behind"
    );
    stop.cancel();
    worker.await.unwrap().unwrap();
}
