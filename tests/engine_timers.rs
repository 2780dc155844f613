//! The engine's timers on paused time: its clock is injected, so a lease of a minute runs out,
//! a retry's backoff passes and a run finishes without the test waiting for any of it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use orchestrator_bus::{Bus, MemoryBus};
use orchestrator_core::objects::Criticality;
use orchestrator_core::run_graph::{RunGraph, RunNode};
use orchestrator_core::scheduler::{ObjectState, Run, RunHeader, SchedulerConfig};
use orchestrator_engine::Engine;
use orchestrator_engine::clock::TokioClock;
use orchestrator_engine::metrics::Metrics;
use orchestrator_protocol::{
    ObjectId, ProgressEvent, ProgressKind, RawJson, ReadyEvent, ResultEvent, RunId, Zone,
};
use orchestrator_store::{RunStatus, StateStore, open_store};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// 1001 (raw) -> 2001 (standardized).
fn chain() -> Arc<RunGraph> {
    let node = |id: u64, zone| RunNode {
        id: ObjectId(id),
        zone,
        criticality: Criticality::Low,
        name: id.to_string(),
        raw: RawJson::from_string("{}".into()),
    };
    let nodes = vec![node(1001, Zone::Raw), node(2001, Zone::Standardized)];
    Arc::new(RunGraph::from_parents(nodes, vec![vec![], vec![0]]).unwrap())
}

/// A worker of `zone` that starts every attempt; the first attempt of each object is lost (it
/// never answers, as a worker that died), later ones load.
async fn forgetful_worker(bus: Arc<MemoryBus>, zone: Zone, stop: CancellationToken) {
    let mut ready = bus.ready_consumer(zone, "workers").await.unwrap();
    loop {
        let batch = tokio::select! {
            _ = stop.cancelled() => return,
            b = ready.next_batch(16) => b.unwrap(),
        };
        let tokens = batch.iter().map(|d| d.token).collect();
        for d in batch {
            let r: ReadyEvent = d.event;
            let started = ProgressEvent::new(ProgressKind::AttemptStarted, &r, "w");
            bus.publish_progress(vec![started]).await.unwrap();
            if r.attempt > 1 {
                let loaded = ResultEvent::loaded(&r, "ok".into(), 1, "w");
                bus.publish_results(vec![loaded]).await.unwrap();
            }
        }
        ready.ack(tokens).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_lease_that_runs_out_is_retried_and_the_run_finishes_on_paused_time() {
    let bus = Arc::new(MemoryBus::new());
    let store: Arc<dyn StateStore> = open_store("memory://", None).unwrap();
    let stop = CancellationToken::new();
    let workers: Vec<_> = [Zone::Raw, Zone::Standardized]
        .into_iter()
        .map(|z| tokio::spawn(forgetful_worker(bus.clone(), z, stop.clone())))
        .collect();
    let config = SchedulerConfig {
        lease_ms: 60_000,
        max_retries: 2,
        ..SchedulerConfig::default()
    };
    let clock = Arc::new(TokioClock::new());
    let metrics = Arc::new(Metrics::new().unwrap());
    let b: Arc<dyn Bus> = bus.clone();
    let mut engine = Engine::new(b, store.clone(), metrics).with_clock(clock);
    let id = RunId::new("paused");
    let run = Run::new(chain(), config, RunHeader::new(id.clone(), 7));
    engine.add_run(run, None, |_, _, _| {}).await.unwrap();

    let began = tokio::time::Instant::now();
    engine.drive(CancellationToken::new()).await.unwrap();
    let took = began.elapsed();
    stop.cancel();
    for w in workers {
        w.await.unwrap();
    }

    // Two leases of a minute ran out (one per object), each followed by a backoff.
    assert!(took >= Duration::from_secs(120), "{took:?}");
    assert!(took < Duration::from_secs(200), "{took:?}");
    let run = engine.run(&id).unwrap();
    assert!(run.is_finished());
    for i in 0..2 {
        let r = run.record(i);
        assert_eq!((r.state, r.attempt, r.retries), (ObjectState::Loaded, 2, 1));
    }
    let stored = store.run(&id).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Finished);
    assert_eq!(stored.counts, *run.counts());
    assert_eq!(stored.counts.summary().retries, 2);
}
