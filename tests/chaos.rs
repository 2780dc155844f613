//! The chaos suite: a 10,000-object run on the real broker and Redis under each fault (kill -9
//! of `serve` five times, kill -9 of random workers five times on three partitions, and ten
//! times when the workers have a `GROUP_INSTANCE_ID`, a broker
//! restart on its SQLite storage, a Redis restart with its append-only file, 1,000 poison
//! messages). Each run must load every object and finish within twice the undisturbed run plus
//! the timeouts the fault costs by design; reading every topic back from the start, no Ready
//! event may precede its parents' loads, and none may start a new attempt of an object that had
//! loaded. Copies (the same attempt published again, results sent twice) are reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use cluster::{Cluster, Proc};
use common::*;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const OBJECTS: usize = 10_000;
/// The production timeouts (`LEASE_SECONDS`, `START_TIMEOUT_SECONDS`): the faults must cost
/// what they cost a user, not what the shorter test defaults would.
const TIMEOUTS: [&str; 4] = ["--lease-seconds", "30", "--start-timeout-seconds", "300"];
const ZONES: [&str; 3] = ["ingestion", "standardization", "application"];

/// How long the undisturbed run takes on this machine (measured once, before any fault).
fn undisturbed() -> Duration {
    static BASELINE: OnceLock<Duration> = OnceLock::new();
    *BASELINE.get_or_init(|| {
        let chaos = Chaos::new("baseline", 2);
        let (elapsed, status) = chaos.finish(Duration::from_secs(600));
        let copies = check_messages(&chaos.cluster, &chaos.file, &status);
        eprintln!("undisturbed: {OBJECTS} objects in {elapsed:?}; {copies}");
        elapsed
    })
}

/// A cluster running a 10,000-object run, with the moment it started.
struct Chaos {
    cluster: Cluster,
    file: PathBuf,
    serve: Proc,
    workers: Vec<Proc>,
    started: Instant,
    restarts: usize,
    /// Each worker's `GROUP_INSTANCE_ID` (kept by its restarts), if the workers have one.
    instance_ids: bool,
}

impl Chaos {
    fn new(name: &str, partitions: u32) -> Chaos {
        Self::with(name, partitions, |_| {})
    }

    fn with(name: &str, partitions: u32, prepare: impl FnOnce(&mut Cluster)) -> Chaos {
        Self::start(name, partitions, false, prepare)
    }

    fn start(
        name: &str,
        partitions: u32,
        instance_ids: bool,
        prepare: impl FnOnce(&mut Cluster),
    ) -> Chaos {
        let mut cluster = Cluster::new(name);
        cluster.partitions = partitions;
        prepare(&mut cluster);
        let file = generated(cluster.dir(), OBJECTS, 11);
        let started = Instant::now();
        let serve = cluster.serve(Some(&file), &TIMEOUTS, "serve-0.log");
        let mut chaos = Chaos {
            cluster,
            file,
            serve,
            workers: Vec::new(),
            started,
            restarts: 0,
            instance_ids,
        };
        chaos.workers = (0..ZONES.len()).map(|k| chaos.worker(k, "-0")).collect();
        chaos
    }

    /// The same, with workers named in their groups (`GROUP_INSTANCE_ID`, kept across restarts).
    fn with_instance_ids(name: &str, partitions: u32) -> Chaos {
        Self::start(name, partitions, true, |_| {})
    }

    fn worker(&self, k: usize, suffix: &str) -> Proc {
        let log = format!("{}{suffix}.log", ZONES[k]);
        let id = format!("{}-slot-0", ZONES[k]);
        let env: &[(&str, &str)] = if self.instance_ids {
            &[("GROUP_INSTANCE_ID", &id)]
        } else {
            &[]
        };
        self.cluster.worker_with(ZONES[k], "simulate:0", &log, env)
    }

    fn kill(proc: &mut Proc) {
        proc.0.kill().unwrap(); // SIGKILL
        proc.0.wait().unwrap();
    }

    fn restart_serve(&mut self) {
        Self::kill(&mut self.serve);
        self.restarts += 1;
        let log = format!("serve-{}.log", self.restarts);
        self.serve = self.cluster.serve(Some(&self.file), &TIMEOUTS, &log);
    }

    fn restart_worker(&mut self, k: usize) {
        Self::kill(&mut self.workers[k]);
        self.restarts += 1;
        self.workers[k] = self.worker(k, &format!("-{}", self.restarts));
    }

    /// Kills a random worker (seeded) and starts it again, `kills` times spread over the run.
    fn restart_random_workers(&mut self, kills: usize) {
        let mut rng = fastrand::Rng::with_seed(7);
        for k in 1..=kills {
            self.cluster.wait_loaded(k * OBJECTS / (kills + 2));
            self.restart_worker(rng.usize(0..ZONES.len()));
        }
    }

    /// Waits for the run to finish; returns how long it took from its start and its status.
    fn finish(&self, limit: Duration) -> (Duration, serde_json::Value) {
        let status = self.cluster.wait_finished(limit);
        let elapsed = self.started.elapsed();
        assert_eq!(
            status["run"]["summary"]["loaded"], OBJECTS,
            "{}",
            status["run"]["summary"]
        );
        (elapsed, status)
    }

    /// Finishes within twice the undisturbed time plus `allowance` (the timeouts the faults
    /// cost by design), then checks the run's messages.
    fn check(&self, baseline: Duration, allowance: Duration) {
        let bound = baseline * 2 + allowance;
        let (elapsed, status) = self.finish(bound + Duration::from_secs(120));
        assert!(
            elapsed <= bound,
            "stalled: finished in {elapsed:?}, past twice the undisturbed {baseline:?} plus {allowance:?}"
        );
        let copies = check_messages(&self.cluster, &self.file, &status);
        eprintln!("finished in {elapsed:?} (bound {bound:?}); {copies}");
    }
}

/// Reads every topic back from the start and checks the order guarantees; returns a line on
/// the copies seen.
fn check_messages(cluster: &Cluster, file: &std::path::Path, status: &serde_json::Value) -> String {
    let run_id = status["run"]["run_id"].as_str().unwrap().to_string();
    let of_run = |r: &cluster::Read| r.value["run_id"] == run_id.as_str();
    let mut readies: Vec<(i64, u64, u64)> = Vec::new();
    for zone in ["raw", "standardized", "application"] {
        for r in cluster.read_topic(&format!("ready.{zone}")) {
            if of_run(&r) {
                let id = r.value["id"].as_u64().unwrap();
                readies.push((r.timestamp_ms, id, r.value["attempt"].as_u64().unwrap()));
            }
        }
    }
    readies.sort_unstable();
    // The first loaded result of each object on the bus, whatever its attempt.
    let mut first_loaded: HashMap<u64, i64> = HashMap::new();
    let mut results: HashMap<(u64, u64), usize> = HashMap::new();
    for r in cluster.read_topic("loaded") {
        if !of_run(&r) || r.value["status"] != "loaded" {
            continue;
        }
        let id = r.value["id"].as_u64().unwrap();
        let at = first_loaded.entry(id).or_insert(i64::MAX);
        *at = (*at).min(r.timestamp_ms);
        *results
            .entry((id, r.value["attempt"].as_u64().unwrap_or(0)))
            .or_default() += 1;
    }
    assert_eq!(first_loaded.len(), OBJECTS, "a loaded result per object");
    let parents = parents_of(file);
    let mut published: HashSet<(u64, u64)> = HashSet::new();
    let mut copies = 0;
    for &(ts, id, attempt) in &readies {
        for p in parents.get(&id).into_iter().flatten() {
            assert!(
                first_loaded[p] <= ts,
                "Ready of {id} (attempt {attempt}) at {ts} before its parent {p} loaded at {}",
                first_loaded[p]
            );
        }
        let again = !published.insert((id, attempt));
        if again {
            copies += 1;
        }
        // After an object loaded, only a copy of an attempt already out may follow (a restart
        // publishing again what it could not know went out): never a new attempt.
        assert!(
            ts <= first_loaded[&id] || again,
            "object {id}: a new attempt {attempt} at {ts} after it loaded at {}",
            first_loaded[&id]
        );
    }
    let retries = published.len() - OBJECTS;
    let duplicate_results: usize = results.values().map(|n| n - 1).sum();
    format!(
        "{} Ready events: {copies} copies, {retries} retries; {duplicate_results} results sent twice",
        readies.len()
    )
}

#[test]
fn serve_killed_with_sigkill_five_times() {
    let baseline = undisturbed();
    let mut chaos = Chaos::new("chaos-serve", 2);
    for k in 1..=5 {
        chaos.cluster.wait_loaded(k * OBJECTS / 7);
        chaos.restart_serve();
    }
    // Each restart: the lease taken over at once, 2 s to read the results on the bus, and a
    // start of a few seconds.
    chaos.check(baseline, Duration::from_secs(5 * 8));
}

#[test]
fn random_workers_killed_with_sigkill_five_times_on_three_partitions() {
    let baseline = undisturbed();
    let mut chaos = Chaos::new("chaos-workers", 3);
    chaos.restart_random_workers(5);
    // Each kill: the group's session (10 s) before the dead member's partitions move, and, on
    // Tansu, the rejoin watch's wait (15 s) when the restarted member is left without some.
    chaos.check(baseline, Duration::from_secs(5 * 30));
}

#[test]
fn random_workers_with_group_instance_ids_killed_with_sigkill_ten_times() {
    let baseline = undisturbed();
    let mut chaos = Chaos::with_instance_ids("chaos-named-workers", 3);
    chaos.restart_random_workers(10);
    // Each kill: the restarted worker takes its predecessor's place in the group (no session
    // timeout to wait out) and the events it took and did not acknowledge. On Tansu a static
    // member's join still waits up to 3 s and some restarts rebalance: ten kills took 15-59 s.
    chaos.check(baseline, Duration::from_secs(10 * 10));
}

#[test]
fn the_broker_restarted_on_its_sqlite_storage() {
    let baseline = undisturbed();
    let mut chaos = Chaos::new("chaos-broker", 2);
    chaos.cluster.wait_loaded(OBJECTS / 3);
    chaos.cluster.kafka.restart("TERM", Duration::from_secs(2));
    // The outage, a publish that timed out (30 s) and the pauses before trying again (10 s),
    // and the group's session.
    chaos.check(baseline, Duration::from_secs(2 + 30 + 10 + 10 + 10));
}

#[test]
fn redis_restarted_with_its_append_only_file() {
    let baseline = undisturbed();
    let mut chaos = Chaos::with("chaos-redis", 2, |c| c.redis = services::durable_redis());
    chaos.cluster.wait_loaded(OBJECTS / 3);
    chaos
        .cluster
        .redis
        .restart("KILL", Duration::from_millis(1500));
    // The outage and the longest pause between two tries of a store write.
    chaos.check(baseline, Duration::from_secs(2 + 2 + 5));
    assert!(chaos.serve.0.try_wait().unwrap().is_none(), "serve stopped");
}

#[test]
fn a_thousand_poison_messages() {
    let baseline = undisturbed();
    let chaos = Chaos::new("chaos-poison", 2);
    chaos.cluster.wait_loaded(OBJECTS / 4);
    poison(&chaos.cluster, 1_000);
    chaos.check(baseline, Duration::from_secs(10));
    let rejected = chaos
        .cluster
        .read_topic("dlq")
        .into_iter()
        .filter(|r| r.value["event"] == "MessageRejected")
        .count();
    assert_eq!(rejected, 1_000, "every poison message set aside to the DLQ");
}

/// Sends `n` unreadable messages, half to the results topic and half to the progress topic;
/// one in a hundred is large (900 kB), as a broken producer's would be.
fn poison(cluster: &Cluster, n: usize) {
    let big = format!(
        "{{\"event\":\"ObjectLoaded\",\"pad\":\"{}",
        "x".repeat(900_000)
    );
    let payloads: Vec<String> = (0..n)
        .map(|k| match k % 100 {
            0 | 1 => big.clone(),
            2 => "\u{0}\u{1}binary".to_string(),
            _ => format!("{{\"id\": \"poison-{k}\", \"status\": 42}}"),
        })
        .collect();
    for (topic, half) in [("loaded", 0), ("progress", 1)] {
        let part: Vec<&str> = payloads
            .iter()
            .skip(half)
            .step_by(2)
            .map(String::as_str)
            .collect();
        cluster.produce(topic, &part);
    }
}
