//! A deterministic simulation of the orchestrator's persistence protocol around the pure
//! scheduler, seed by seed: the engine persists each step's changed records before it publishes
//! the Ready events they imply, and the world is hostile. The engine crashes at random steps
//! (before or after its batch is stored, so that stored events may never have gone out) and is
//! restored from the store; store batches fail; Ready events and results are lost, duplicated and
//! reordered; workers crash and forget what they ran. Every seed must end with every object
//! loaded, no Ready event published before all its object's parents were stored as loaded, and
//! none after its object's load was stored.

use orchestrator_core::objects::Criticality;
use orchestrator_core::run_graph::{RunGraph, RunNode};
use orchestrator_core::scheduler::{
    Action, Event, InFlightOnRestore, ObjectState, Run, RunHeader, RunSnapshot, SchedulerConfig,
    ZonePolicy,
};
use orchestrator_protocol::{ObjectId, RawJson, RunId, Zone};
use std::collections::HashSet;
use std::sync::Arc;

/// Seeds in all, split over [`SHARDS`] tests so that they run on every core.
const SEEDS: u64 = 12_000;
const SHARDS: u64 = 4;
/// Steps after which the world stops misbehaving, so that every run can end.
const CALM_AFTER: u32 = 600;
const MAX_STEPS: u32 = 60_000;

fn graph(rng: &mut fastrand::Rng) -> Arc<RunGraph> {
    let n = rng.usize(1..24);
    let raw = RawJson::from_string("{}".into());
    let mut nodes = Vec::with_capacity(n);
    let mut parents = Vec::with_capacity(n);
    for i in 0..n {
        nodes.push(RunNode {
            id: ObjectId(1000 + i as u64),
            zone: Zone::ALL[rng.usize(0..3)],
            criticality: Criticality::Medium,
            name: format!("o{i}"),
            raw: raw.clone(),
        });
        let mut ps: Vec<u32> = (0..rng.usize(0..=i.min(3)))
            .map(|_| rng.u32(0..i as u32))
            .collect();
        ps.sort_unstable();
        ps.dedup();
        parents.push(ps);
    }
    Arc::new(RunGraph::from_parents(nodes, parents).unwrap_or_else(|e| panic!("{e}")))
}

fn config(rng: &mut fastrand::Rng) -> SchedulerConfig {
    let mut c = SchedulerConfig {
        // Enough that transient faults never exhaust an object: every object must load.
        max_retries: 1_000,
        lease_ms: 60,
        schedule_to_start_ms: Some(90),
        ..SchedulerConfig::default()
    };
    for z in &mut c.zones {
        *z = ZonePolicy {
            max_in_flight: rng.bool().then(|| rng.u32(1..4)),
            backoff_base_ms: 5,
            backoff_cap_ms: 40,
        };
    }
    c
}

/// What one seed went through, for the summary line.
#[derive(Default)]
struct Seen {
    crashes: u32,
    failed_batches: u32,
    duplicate_readies: u32,
}

/// The world of one seed: the engine's memory (`run`), the store (`stored`), the bus (Ready
/// events and results in flight, each deliverable from a time), and the workers' memory.
struct World {
    graph: Arc<RunGraph>,
    config: SchedulerConfig,
    seed: u64,
    rng: fastrand::Rng,
    now: u64,
    run: Run,
    stored: RunSnapshot,
    ready: Vec<(u64, u32, u32)>,
    results: Vec<(u64, Event)>,
    /// Results the engine took and has not acknowledged (stored) yet.
    unacked: Vec<(u64, Event)>,
    /// Attempts the workers ran: a Ready event for one of them is dropped, until a worker
    /// crash forgets them.
    ran: HashSet<(u32, u32)>,
    published: HashSet<(u32, u32)>,
    seen: Seen,
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = fastrand::Rng::with_seed(seed);
        let graph = graph(&mut rng);
        let config = config(&mut rng);
        let run = Run::new(
            graph.clone(),
            config.clone(),
            RunHeader::new(RunId::new("sim"), seed),
        );
        let stored = run.snapshot();
        World {
            graph,
            config,
            seed,
            rng,
            now: 0,
            run,
            stored,
            ready: Vec::new(),
            results: Vec::new(),
            unacked: Vec::new(),
            ran: HashSet::new(),
            published: HashSet::new(),
            seen: Seen::default(),
        }
    }

    fn calm(&self, step: u32) -> bool {
        step > CALM_AFTER
    }

    /// Rebuilds the engine from the store, as a restarted `serve` does; what it took from the
    /// bus and did not store is delivered again.
    fn restore(&mut self, out: &mut Vec<Action>) {
        self.seen.crashes += 1;
        self.results.append(&mut self.unacked);
        self.run = Run::from_snapshot(
            self.graph.clone(),
            self.config.clone(),
            self.stored.clone(),
            InFlightOnRestore::Republish { after_ms: 20 },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        out.clear();
        self.run.start(self.now, out);
    }

    /// Stores the step's changes, then publishes its Ready events, with the faults of the step.
    /// Returns false when the engine crashed (the caller restores it).
    fn commit(&mut self, step: u32, out: &mut Vec<Action>) -> bool {
        let calm = self.calm(step);
        let delta = self.run.take_delta();
        // A batch that fails, or a crash before it is stored: nothing of the step happened.
        if !calm && self.rng.u8(0..100) < 3 {
            self.seen.failed_batches += 1;
            return false;
        }
        if let Some(delta) = delta {
            self.stored.header = delta.header;
            for (id, record) in delta.records {
                if let Some(i) = self.graph.index_of(id) {
                    self.stored.records[i as usize].1 = record;
                }
            }
        }
        self.unacked.clear();
        // A crash after the batch is stored and before (some of) its events are published.
        let crash_at = (!calm && self.rng.u8(0..100) < 3).then(|| self.rng.usize(0..=out.len()));
        for (k, action) in out.drain(..).enumerate() {
            if crash_at == Some(k) {
                return false;
            }
            let Action::Dispatch { index, attempt } = action else {
                continue;
            };
            self.check_publish(index, attempt);
            if !self.published.insert((index, attempt)) {
                self.seen.duplicate_readies += 1;
            }
            let copies = match (calm, self.rng.u8(0..100)) {
                (false, 0..=4) => 0, // lost
                (false, 5..=9) => 2, // duplicated
                _ => 1,
            };
            for _ in 0..copies {
                let at = self.now + self.rng.u64(0..20);
                self.ready.push((at, index, attempt));
            }
        }
        // A crash after the last event went out is a crash all the same.
        crash_at.is_none()
    }

    /// The guarantees, checked against the store when a Ready event goes out.
    fn check_publish(&self, index: u32, attempt: u32) {
        let seed = self.seed;
        assert_ne!(
            self.stored.records[index as usize].1.state,
            ObjectState::Loaded,
            "seed {seed}: object {index} (attempt {attempt}) published after its load was stored"
        );
        for &p in self.graph.parents(index) {
            assert_eq!(
                self.stored.records[p as usize].1.state,
                ObjectState::Loaded,
                "seed {seed}: object {index} published before its parent {p} was stored as loaded"
            );
        }
    }

    /// A worker takes a Ready event: runs it (unless it ran that attempt already) and answers,
    /// or crashes and forgets.
    fn work(&mut self, step: u32, k: usize) {
        let (_, index, attempt) = self.ready.swap_remove(k);
        let calm = self.calm(step);
        if !calm && self.rng.u8(0..100) < 2 {
            self.ran.clear(); // a worker died: what it ran is forgotten, what it held is lost
            return;
        }
        if !self.ran.insert((index, attempt)) {
            return; // the duplicate of an attempt it runs or has run
        }
        let id = self.graph.node(index).id;
        let at = self.now + self.rng.u64(0..30);
        self.results.push((at, Event::Started { id, attempt }));
        let fate = if calm { 0 } else { self.rng.u8(0..100) };
        let result = match fate {
            0..=79 => Some(Event::Loaded {
                id,
                attempt: Some(attempt),
                report: Default::default(),
            }),
            80..=89 => Some(Event::Failed {
                id,
                attempt: Some(attempt),
                reason: "transient".into(),
                retryable: true,
                report: Default::default(),
            }),
            _ => None, // the result was lost
        };
        if let Some(r) = result {
            let copies = if !calm && self.rng.u8(0..100) < 5 {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let later = at + self.rng.u64(0..40);
                self.results.push((later, r.clone()));
            }
        }
    }

    /// One step: deliver something, or let time pass; then commit.
    fn step(&mut self, step: u32, out: &mut Vec<Action>) {
        let now = self.now;
        let results: Vec<usize> = (0..self.results.len())
            .filter(|&k| self.results[k].0 <= now)
            .collect();
        let readies: Vec<usize> = (0..self.ready.len())
            .filter(|&k| self.ready[k].0 <= now)
            .collect();
        match self.rng.u8(0..3) {
            0 if !results.is_empty() => {
                let (at, event) = self
                    .results
                    .swap_remove(results[self.rng.usize(0..results.len())]);
                self.unacked.push((at, event.clone()));
                self.run.handle(event, now, out);
            }
            1 if !readies.is_empty() => {
                let k = readies[self.rng.usize(0..readies.len())];
                self.work(step, k);
                return;
            }
            _ => {
                self.now += self.rng.u64(1..15);
                self.run.tick(self.now, out);
            }
        }
        if !self.commit(step, out) {
            self.restore(out);
            // The restored engine's first batch is stored and published like any other.
            while !self.commit(CALM_AFTER + 1, out) {
                self.restore(out);
            }
        }
    }
}

fn simulate(seed: u64) -> Seen {
    let mut world = World::new(seed);
    let mut out = Vec::new();
    world.run.start(0, &mut out);
    while !world.commit(CALM_AFTER + 1, &mut out) {
        world.restore(&mut out);
    }
    for step in 0..MAX_STEPS {
        if world.run.is_finished() {
            break;
        }
        world.step(step, &mut out);
    }
    assert!(
        world.run.is_finished(),
        "seed {seed}: the run did not finish"
    );
    let counts = world.stored.header.counts;
    assert_eq!(
        counts.in_state(ObjectState::Loaded),
        world.graph.len(),
        "seed {seed}: the stored counts disagree with the stored records"
    );
    for (i, (_, r)) in world.stored.records.iter().enumerate() {
        assert_eq!(
            r.state,
            ObjectState::Loaded,
            "seed {seed}: object {i} ended {:?} in the store",
            r.state
        );
    }
    world.seen
}

fn shard(k: u64) {
    let (mut crashes, mut failed, mut duplicates) = (0u64, 0u64, 0u64);
    for seed in (k..SEEDS).step_by(SHARDS as usize) {
        let seen = simulate(seed);
        crashes += u64::from(seen.crashes);
        failed += u64::from(seen.failed_batches);
        duplicates += u64::from(seen.duplicate_readies);
    }
    // The faults were there: a simulation that injected none would prove nothing.
    assert!(
        crashes > 100 && failed > 100,
        "{crashes} crashes, {failed} failed batches"
    );
    eprintln!(
        "shard {k}: {} seeds, {crashes} engine crashes, {failed} failed batches, {duplicates} Ready events published again",
        SEEDS / SHARDS
    );
}

#[test]
fn seeds_0_mod_4_keep_every_guarantee() {
    shard(0);
}

#[test]
fn seeds_1_mod_4_keep_every_guarantee() {
    shard(1);
}

#[test]
fn seeds_2_mod_4_keep_every_guarantee() {
    shard(2);
}

#[test]
fn seeds_3_mod_4_keep_every_guarantee() {
    shard(3);
}
