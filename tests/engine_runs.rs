//! The engine with several runs in flight at once on one in-process bus, each with its own id
//! and graph version: results are routed by run id and every run finishes on its own. On paused
//! time: the workers' simulated work and the retries' backoff take no real time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use orchestrator_bus::{Bus, MemoryBus};
use orchestrator_core::generate::{GenerateOptions, generate};
use orchestrator_core::graph::{LoadOptions, load_graph};
use orchestrator_core::plan::Selection;
use orchestrator_core::run_graph::RunGraph;
use orchestrator_core::scheduler::{ObjectState, Run, SchedulerConfig};
use orchestrator_engine::Engine;
use orchestrator_engine::clock::TokioClock;
use orchestrator_engine::metrics::Metrics;
use orchestrator_protocol::{RunId, Zone};
use orchestrator_store::{RunHeader, RunStatus, open_store};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use worker_runtime::{HandlerSpec, WorkerConfig, WorkerStats, run_worker};

fn graph(objects: usize, seed: u64) -> Arc<RunGraph> {
    let mut buf = Vec::new();
    generate(
        GenerateOptions {
            objects,
            seed,
            max_parents: 3,
            full: false,
        },
        &mut buf,
    )
    .unwrap();
    let g = load_graph(String::from_utf8(buf).unwrap(), LoadOptions::default())
        .graph
        .unwrap();
    Arc::new(RunGraph::new(&g, &Selection::all(&g)))
}

fn meta(id: &str, g: &RunGraph) -> RunHeader {
    RunHeader {
        run_id: RunId::new(id),
        graph_version: g.version().to_string(),
        source: "generated".into(),
        created_ms: 1,
        updated_ms: 1,
        status: RunStatus::Running,
        cancelled: false,
        seed: 1,
        objects: g.len(),
        options: Default::default(),
        counts: Default::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn two_runs_in_flight_at_once_both_finish() {
    let bus = Arc::new(MemoryBus::new());
    let store = open_store("memory://", None).unwrap();
    let stop = CancellationToken::new();
    let spec: HandlerSpec = "simulate:1:0.2".parse().unwrap();
    let mut workers = Vec::new();
    for zone in Zone::ALL {
        let mut config = WorkerConfig::new(zone);
        config.max_workers = 8;
        let b: Arc<dyn Bus> = bus.clone();
        workers.push(tokio::spawn(run_worker(
            b,
            spec.build(5).unwrap(),
            config,
            Arc::new(WorkerStats::new(zone).unwrap()),
            stop.clone(),
        )));
    }
    let (a, b) = (graph(300, 1), graph(200, 2));
    assert_ne!(a.version(), b.version());
    let config = SchedulerConfig {
        max_retries: 10,
        zones: [orchestrator_core::scheduler::ZonePolicy {
            max_in_flight: Some(16),
            backoff_base_ms: 1,
            backoff_cap_ms: 5,
        }; 3],
        ..Default::default()
    };
    let mut engine = Engine::new(
        bus.clone(),
        store.clone(),
        Arc::new(Metrics::new().unwrap()),
    )
    .with_clock(Arc::new(TokioClock::new()));
    engine
        .add_run(
            Run::new(a.clone(), config.clone(), meta("run-a", &a)),
            None,
            |_, _, _| {},
        )
        .await
        .unwrap();
    engine
        .add_run(
            Run::new(b.clone(), config, meta("run-b", &b)),
            None,
            |_, _, _| {},
        )
        .await
        .unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        engine.drive(CancellationToken::new()),
    )
    .await
    .unwrap()
    .unwrap();
    stop.cancel();
    for w in workers {
        w.await.unwrap().unwrap();
    }
    for (id, g) in [("run-a", &a), ("run-b", &b)] {
        let run = engine.run(&RunId::new(id)).unwrap();
        let s = run.summary();
        assert_eq!(s.objects, g.len());
        assert_eq!(
            s.loaded + s.failed + s.upstream_failed,
            g.len(),
            "{id}: {s:?}"
        );
        assert!(
            s.retries > 0,
            "{id}: with a 20% failure rate some attempts were retried"
        );
        // What the store holds agrees with the run.
        let stored = store.objects(&RunId::new(id)).await.unwrap();
        assert_eq!(stored.len(), g.len());
        let loaded = stored
            .iter()
            .filter(|(_, r)| r.state == ObjectState::Loaded)
            .count();
        assert_eq!(loaded, s.loaded);
    }
    let runs = store.runs().await.unwrap();
    for r in &runs {
        let held = engine.run(&r.run_id).unwrap();
        assert_eq!(r.counts, *held.counts(), "the stored counts are the run's");
    }
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Finished),
        "{runs:?}"
    );
}
