//! The engine's schedule on paused time: ticks start runs named by their tick, an object in
//! flight in one run is never dispatched by another (the later run takes its result), and a
//! restart on the same store never starts a tick twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::TimeZone;
use orchestrator_bus::{Bus, MemoryBus};
use orchestrator_core::graph::MissingParents;
use orchestrator_core::schedule::{Catchup, parse_zone};
use orchestrator_core::scheduler::InFlightOnRestore;
use orchestrator_core::scheduler::{ObjectState, SchedulerConfig};
use orchestrator_engine::clock::{Clock, TokioClock};
use orchestrator_engine::metrics::Metrics;
use orchestrator_engine::open::{Submission, open_new, open_stored};
use orchestrator_engine::open_schedule::{ScheduleSettings, open_timetable};
use orchestrator_engine::{DriveOptions, Engine, EngineCommand, EngineSchedule};
use orchestrator_protocol::{ObjectId, ReadyEvent, ResultEvent, RunId, Zone};
use orchestrator_store::{StateStore, open_store};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MINUTE: u64 = 60_000;

/// Raw 1001 every five minutes; 2001 follows it; 3001 hourly.
const CATALOG: &str = r#"[
 {"IdObjet":1001,"Zone":"1-Raw","Fréquence":"*/5 * * * *"},
 {"IdObjet":2001,"Zone":"2-Standardized","IdObjet_Parent":1001},
 {"IdObjet":3001,"Zone":"3-Application","IdObjet_Parent":2001,"Fréquence":"0 * * * *"}]"#;

fn at(h: u32, mi: u32, s: u32) -> u64 {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 30, h, mi, s)
        .unwrap()
        .timestamp_millis() as u64
}

/// What the workers saw: every Ready event, and whether one object was ever in flight twice.
#[derive(Default)]
struct Seen {
    ready: Vec<(RunId, ObjectId, u64)>,
    in_flight: HashSet<ObjectId>,
    twice_at_once: Vec<ObjectId>,
}

/// A worker of `zone`: raw objects take seven minutes, the others a second.
async fn worker(
    bus: Arc<MemoryBus>,
    zone: Zone,
    clock: Arc<TokioClock>,
    seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
) {
    let mut ready = bus.ready_consumer(zone, "workers").await.unwrap();
    loop {
        let batch = tokio::select! {
            _ = stop.cancelled() => return,
            b = ready.next_batch(16) => b.unwrap(),
        };
        let tokens = batch.iter().map(|d| d.token).collect();
        for d in batch {
            let r: ReadyEvent = d.event;
            {
                let mut s = seen.lock().unwrap();
                s.ready.push((r.run_id.clone(), r.id, clock.now_ms()));
                if !s.in_flight.insert(r.id) {
                    s.twice_at_once.push(r.id);
                }
            }
            let (bus, seen) = (bus.clone(), seen.clone());
            let took = if zone == Zone::Raw { 7 * MINUTE } else { 1_000 };
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(took)).await;
                seen.lock().unwrap().in_flight.remove(&r.id);
                let loaded = ResultEvent::loaded(&r, "ok".into(), took, "w");
                bus.publish_results(vec![loaded]).await.unwrap();
            });
        }
        ready.ack(tokens).await.unwrap();
    }
}

fn settings() -> ScheduleSettings {
    ScheduleSettings {
        zone: parse_zone("UTC").unwrap(),
        catchup: Catchup::Once,
        missing_parents: MissingParents::Error,
        max_object_bytes: usize::MAX,
    }
}

async fn engine_until(
    store: &Arc<dyn StateStore>,
    clock: Arc<TokioClock>,
    seen: &Arc<Mutex<Seen>>,
    until_ms: u64,
) -> (Engine, Arc<Metrics>) {
    engine_with(store, clock, seen, until_ms, None).await
}

async fn engine_with(
    store: &Arc<dyn StateStore>,
    clock: Arc<TokioClock>,
    seen: &Arc<Mutex<Seen>>,
    until_ms: u64,
    commands: Option<tokio::sync::mpsc::Receiver<EngineCommand>>,
) -> (Engine, Arc<Metrics>) {
    let bus = Arc::new(MemoryBus::new());
    let stop = CancellationToken::new();
    let workers: Vec<_> = Zone::ALL
        .into_iter()
        .map(|z| {
            tokio::spawn(worker(
                bus.clone(),
                z,
                clock.clone(),
                seen.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let b: Arc<dyn Bus> = bus.clone();
    let metrics = Arc::new(Metrics::new().unwrap());
    let mut engine = Engine::new(b, store.clone(), metrics.clone()).with_clock(clock.clone());
    let config = SchedulerConfig::default();
    // What a stop left unfinished goes on (as `serve` and `run --schedule` do at start).
    for header in store.runs().await.unwrap() {
        if header.status.is_unfinished() {
            let run = open_stored(&**store, header, &config, InFlightOnRestore::Resend)
                .await
                .unwrap();
            engine.add_run(run, None, |_, _, _| {}).await.unwrap();
        }
    }
    let (timetable, _) = open_timetable(&**store, CATALOG.into(), &settings(), clock.now_ms())
        .await
        .unwrap();
    engine.set_schedule(EngineSchedule {
        timetable,
        config,
        source_hash: String::new(),
    });
    let shutdown = CancellationToken::new();
    let wait = until_ms - clock.now_ms();
    let stopper = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        stopper.cancel();
    });
    let options = DriveOptions {
        forget_finished: false,
        ..DriveOptions::server()
    };
    engine
        .drive_with(shutdown, options, commands)
        .await
        .unwrap();
    stop.cancel();
    for w in workers {
        w.await.unwrap();
    }
    (engine, metrics)
}

#[tokio::test(start_paused = true)]
async fn ticks_start_runs_and_an_object_in_flight_is_never_started_by_another_run() {
    let store: Arc<dyn StateStore> = open_store("memory://", None).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let clock = Arc::new(TokioClock::starting_at(at(6, 2, 0)));
    let (engine, metrics) = engine_until(&store, clock.clone(), &seen, at(6, 17, 30)).await;
    // The freshness gauges follow the loads: 1001 loaded at 06:17, after its 06:15 tick.
    let text = metrics.render();
    assert!(
        text.contains("orchestrator_schedule_stale_objects{zone=\"1-Raw\"} 0"),
        "{text}"
    );

    let runs: Vec<String> = store
        .runs()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.run_id.to_string())
        .collect();
    // Caught up at 06:02 (the 06:00 tick), then every five minutes.
    assert_eq!(
        runs,
        [
            "tick-20261130-060000",
            "tick-20261130-060500",
            "tick-20261130-061000",
            "tick-20261130-061500"
        ]
    );
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(seen.twice_at_once.is_empty(), "{:?}", seen.twice_at_once);
    // 06:00's 1001 loads at 06:09: 06:05's waited for it and took its result (no Ready of its
    // own); 06:10's ran its own.
    let raw: Vec<(String, u64)> = seen
        .ready
        .iter()
        .filter(|(_, id, _)| id.0 == 1001)
        .map(|(run, _, at)| (run.to_string(), *at))
        .collect();
    assert_eq!(
        raw,
        [
            ("tick-20261130-060000".to_string(), at(6, 2, 0)),
            ("tick-20261130-061000".to_string(), at(6, 10, 0)),
        ]
    );
    let waited = RunId::new("tick-20261130-060500");
    let run = engine.run(&waited).unwrap();
    assert!(run.is_finished());
    let attempts = store.attempts(&waited, ObjectId(1001)).await.unwrap();
    let info = attempts[0].text.as_ref().map(|t| t.info.clone());
    assert_eq!(
        info.as_deref(),
        Some("loaded by run tick-20261130-060000, which had it in flight")
    );
    // 3001 (hourly) ran once, in the first run; later runs left it (fresh).
    let app: Vec<&RunId> = seen
        .ready
        .iter()
        .filter(|(_, id, _)| id.0 == 3001)
        .map(|(run, _, _)| run)
        .collect();
    assert_eq!(app, [&RunId::new("tick-20261130-060000")]);
    let states: BTreeMap<u64, ObjectState> = engine
        .run(&RunId::new("tick-20261130-060000"))
        .unwrap()
        .graph()
        .nodes()
        .enumerate()
        .map(|(i, n)| {
            (
                n.id.0,
                engine
                    .run(&RunId::new("tick-20261130-060000"))
                    .unwrap()
                    .record(i as u32)
                    .state,
            )
        })
        .collect();
    assert!(
        states.values().all(|s| *s == ObjectState::Loaded),
        "{states:?}"
    );
    drop(seen);

    // A restart at 06:17:40 on the same store: the 06:15 tick is stored, so nothing starts
    // again until 06:20.
    let again = Arc::new(Mutex::new(Seen::default()));
    let clock = Arc::new(TokioClock::starting_at(at(6, 17, 40)));
    engine_until(&store, clock, &again, at(6, 20, 30)).await;
    let runs = store.runs().await.unwrap();
    assert_eq!(runs.len(), 5, "only the 06:20 tick started");
    assert_eq!(runs[4].run_id.as_str(), "tick-20261130-062000");
    let state = store.schedule_state().await.unwrap().unwrap();
    assert_eq!(state.ticked_ms, Some(at(6, 20, 0)));
}

#[tokio::test(start_paused = true)]
async fn a_run_submitted_through_the_api_waits_for_the_schedules_attempt_in_flight() {
    let store: Arc<dyn StateStore> = open_store("memory://", None).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let clock = Arc::new(TokioClock::starting_at(at(6, 2, 0)));
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    // At 06:03, while the 06:00 tick's 1001 runs (seven minutes), a user submits 1001 and 2001.
    let submit_clock = clock.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(MINUTE)).await;
        let submission = Submission {
            text: r#"[{"IdObjet":1001,"Zone":"1-Raw"},{"IdObjet":2001,"Zone":"2-Standardized","IdObjet_Parent":1001}]"#.into(),
            source: "api".into(),
            options: Default::default(),
            seed: Some(1),
            strict: false,
            max_object_bytes: usize::MAX,
            run_id: Some(RunId::new("submitted")),
        };
        let prepared = open_new(
            submission,
            &SchedulerConfig::default(),
            submit_clock.now_ms(),
        )
        .unwrap();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let command = EngineCommand::Submit {
            run: Box::new(prepared.run),
            objects: prepared.objects,
            reply,
        };
        tx.send(command).await.unwrap();
        answer.await.unwrap().unwrap();
        // Kept open until the end, so that the engine goes on.
        tokio::time::sleep(Duration::from_millis(60 * MINUTE)).await;
        drop(tx);
    });
    let (engine, _) = engine_with(&store, clock, &seen, at(6, 9, 30), Some(rx)).await;
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(seen.twice_at_once.is_empty(), "{:?}", seen.twice_at_once);
    let raw: Vec<String> = seen
        .ready
        .iter()
        .filter(|(_, id, _)| id.0 == 1001)
        .map(|(run, _, _)| run.to_string())
        .collect();
    assert_eq!(
        raw,
        ["tick-20261130-060000"],
        "one attempt of 1001, the schedule's"
    );
    let submitted = RunId::new("submitted");
    let run = engine.run(&submitted).unwrap();
    let states: Vec<_> = (0..2)
        .map(|i| (run.graph().id(i), run.record(i).state))
        .collect();
    assert!(
        run.is_finished(),
        "it took 1001's result, then ran 2001: {states:?} {:?}",
        seen.ready
    );
    let attempts = store.attempts(&submitted, ObjectId(1001)).await.unwrap();
    assert_eq!(
        attempts[0]
            .text
            .as_ref()
            .map(|t| t.worker.clone())
            .as_deref(),
        Some("run tick-20261130-060000")
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_an_object_in_flight_in_two_runs_still_goes_out_once() {
    let store: Arc<dyn StateStore> = open_store("memory://", None).unwrap();
    // Stopped at 06:07: the 06:00 run's 1001 in flight, the 06:05 run's held back for it.
    let first = Arc::new(Mutex::new(Seen::default()));
    let clock = Arc::new(TokioClock::starting_at(at(6, 2, 0)));
    engine_until(&store, clock, &first, at(6, 7, 0)).await;
    let first = std::mem::take(&mut *first.lock().unwrap());
    let raw = |seen: &Seen| seen.ready.iter().filter(|(_, id, _)| id.0 == 1001).count();
    assert_eq!(raw(&first), 1, "{:?}", first.ready);
    // Restarted at once: both runs go on; 1001's attempt goes out again for one of them only
    // (the other holds back again), and the 06:10 tick's waits for it too.
    let second = Arc::new(Mutex::new(Seen::default()));
    let clock = Arc::new(TokioClock::starting_at(at(6, 7, 0)));
    let (engine, _) = engine_until(&store, clock, &second, at(6, 14, 30)).await;
    let second = std::mem::take(&mut *second.lock().unwrap());
    assert!(
        second.twice_at_once.is_empty(),
        "{:?}",
        second.twice_at_once
    );
    assert_eq!(raw(&second), 1, "{:?}", second.ready);
    for run in ["tick-20261130-060000", "tick-20261130-060500"] {
        let run = engine.run(&RunId::new(run)).unwrap();
        assert!(run.is_finished(), "{:?}", run.header().status);
    }
}
