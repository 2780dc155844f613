//! The distributed mode end to end, printing its figures: `orchestrator serve` and the three
//! worker binaries (`simulate:0`, one Ready topic per zone) on a real Tansu broker and a real
//! redis-server, on both of Tansu's storage engines. Build the binaries first, then run:
//! `cargo build --release --workspace --bins && cargo bench -p orchestrator --bench distributed`
//! (`-- sqlite` or `-- memory` for one engine; `BENCH_OBJECTS=10000,100000` to choose sizes;
//! `BENCH_PARTITIONS=3` for three partitions per topic instead of one; `BENCH_LOG_DIR=DIR` keeps
//! every process's log in DIR; `-- users` for the run with the users' defaults, `users.rs`).
//! Per engine: a calibration of the broker alone (produce-only and consume-only messages per
//! second, both at once with the product's messages, and the time of a chain link through it
//! with no work), objects per second and Redis commands per object on generated graphs, and on
//! a 1,000-deep chain the time from an object's parent's result to its own, p50 and p99.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../../tests/common/services.rs"]
mod services;

mod calibration;
mod files;
mod users;

use calibration::{calibrate, calibrate_both, round_trips};
use files::{chain, generated};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `serve`'s start timeout in these runs. With `simulate:0` no attempt waits anywhere near this
/// for a worker: one whose Ready event or result the broker lost (Tansu's memory engine, see
/// BENCHMARKS.md) is sent again after it instead of the default 300 s, and counted.
const START_TIMEOUT_SECONDS: u64 = 10;

/// Partitions of every topic (`BENCH_PARTITIONS`): one by default, as each layer has one worker
/// here (the README's advice: no more partitions than the workers that read them; on Tansu every
/// partition a consumer names costs the broker queries on each fetch, found or not).
fn partitions() -> i32 {
    std::env::var("BENCH_PARTITIONS")
        .ok()
        .and_then(|p| p.parse().ok())
        .filter(|&p| p > 0)
        .unwrap_or(1)
}

/// A process of the stack on `s`, with the topics and Redis keys of `prefix` (one run per
/// prefix) and the librdkafka properties the broker needs.
fn stack_env<'c>(cmd: &'c mut Command, s: &Services, prefix: &str) -> &'c mut Command {
    cmd.env("KAFKA_BOOTSTRAP", &s.bootstrap)
        .env("REDIS_URL", &s.redis_url)
        .env("REDIS_PREFIX", prefix)
        .env("TOPIC_READY", format!("{prefix}.ready"))
        .env("TOPIC_LOADED", format!("{prefix}.loaded"))
        .env("TOPIC_PROGRESS", format!("{prefix}.progress"))
        .env("TOPIC_FAILED", format!("{prefix}.failed"))
        .env("TOPIC_DLQ", format!("{prefix}.dlq"))
        .env("TOPIC_CONTROL", format!("{prefix}.control"));
    if std::env::var_os("KAFKA_PROPERTIES").is_none() && !s.kafka_properties.is_empty() {
        cmd.env("KAFKA_PROPERTIES", s.kafka_properties);
    }
    cmd
}

/// The worker binaries, one per layer.
const WORKERS: [&str; 3] = [
    "ingestion-worker",
    "standardization-worker",
    "application-worker",
];

/// Stops its process with SIGTERM (a worker then leaves its group, so that the next run's
/// workers are not held up by a dead member), SIGKILL if it lingers.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The release binaries, next to this bench's `orchestrator`.
fn bin(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_orchestrator")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release --workspace --bins` first",
        path.display()
    );
    path
}

fn tansu() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or(format!("{home}/.cargo"));
    PathBuf::from(cargo_home).join("bin/tansu")
}

struct Services {
    _tansu: Proc,
    _redis: Proc,
    bootstrap: String,
    redis_url: String,
    dir: tempfile::TempDir,
    /// librdkafka properties the processes need on this engine.
    kafka_properties: &'static str,
}

fn services(engine: &str) -> Services {
    let dir = tempfile::tempdir().unwrap();
    let (kp, rp) = (services::free_port(), services::free_port());
    let url = format!("tcp://127.0.0.1:{kp}");
    let storage = if engine == "sqlite" {
        "sqlite://tansu.db".to_string()
    } else {
        "memory://tansu/".to_string()
    };
    let tansu = Command::new(tansu())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", &storage])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu (tools/test.sh installs it)");
    let redis = Command::new("redis-server")
        .args([
            "--port",
            &rp.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    wait_port(kp);
    wait_port(rp);
    if engine == "sqlite" {
        services::index_tansu_headers(dir.path());
    }
    Services {
        _tansu: Proc(tansu),
        _redis: Proc(redis),
        bootstrap: format!("127.0.0.1:{kp}"),
        redis_url: format!("redis://127.0.0.1:{rp}"),
        dir,
        // Tansu 0.6.0's in-memory engine loses produced messages when several produce requests
        // for a partition are in flight at once: its high watermarks end below offsets already
        // delivered and committed, and a result or a Ready is gone (the run then waits for the
        // 300 s start timeout). One request in flight per connection avoids it: 18 of 18 runs
        // of 100,000 objects clean with it, 4 of 27 stalled without (BENCHMARKS.md).
        kafka_properties: if engine == "memory" {
            "max.in.flight.requests.per.connection=1"
        } else {
            ""
        },
    }
}

fn redis_query<T: redis::FromRedisValue>(url: &str, cmd: &mut redis::Cmd) -> T {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_connection().unwrap();
    cmd.query(&mut con).unwrap()
}

/// Calls of every command since the last reset.
fn redis_calls(url: &str) -> u64 {
    let info: String = redis_query(url, redis::cmd("INFO").arg("commandstats"));
    info.lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

struct RunFigures {
    objects: usize,
    seconds: f64,
    commands: u64,
    /// Attempts sent again (here: after the start timeout, their Ready or result lost).
    retries: u64,
    /// Unix ms of each object's result on the results topic.
    results: HashMap<u64, i64>,
    /// Unix ms of each object's Ready event on its zone's topic.
    ready: HashMap<u64, i64>,
}

/// Runs `file` on serve and three workers; returns how long the run took (from its record).
fn run(s: &Services, file: &Path, tag: &str, fetch_wait_ms: u32, read_results: bool) -> RunFigures {
    let prefix = format!("bench{tag}");
    // `BENCH_LOG_DIR`: keep each process's log there (at info) to look into a slow run. The
    // workers' logs are always kept (in the bench's directory otherwise): they say when the
    // workers have their partitions.
    let log_dir = std::env::var_os("BENCH_LOG_DIR").map(PathBuf::from);
    let log_path = |name: &str| {
        log_dir
            .as_deref()
            .unwrap_or(s.dir.path())
            .join(format!("{prefix}-{name}.log"))
    };
    let env = |cmd: &mut Command, name: &str| {
        let (level, log) = if log_dir.is_some() || name.ends_with("-worker") {
            (
                "info",
                Stdio::from(std::fs::File::create(log_path(name)).unwrap()),
            )
        } else {
            ("warn", Stdio::null())
        };
        stack_env(cmd, s, &prefix)
            .env("READY_TOPIC_PER_ZONE", "true")
            .env("KAFKA_PARTITIONS", partitions().to_string())
            .env("KAFKA_FETCH_WAIT_MAX_MS", fetch_wait_ms.to_string())
            .env("LOG_LEVEL", level)
            .stdout(Stdio::null())
            .stderr(log);
    };
    let _: () = redis_query(&s.redis_url, redis::cmd("CONFIG").arg("RESETSTAT"));
    let mut workers = Vec::new();
    let mut worker_logs = Vec::new();
    for w in WORKERS {
        worker_logs.push(log_path(w));
        let mut cmd = Command::new(bin(w));
        env(&mut cmd, w);
        cmd.env("HANDLER", "simulate:0")
            .env("MAX_WORKERS", "64")
            .env("WORKER_HTTP_ADDR", "127.0.0.1:0");
        workers.push(Proc(cmd.spawn().unwrap()));
    }
    // Workers run continuously in a deployment: the run starts once they are in their groups,
    // so that it measures the work, not the workers' start-up.
    services::wait_assigned(&worker_logs, Duration::from_secs(120));
    let mut cmd = Command::new(bin("orchestrator"));
    env(&mut cmd, "serve");
    cmd.args(["serve", "--http", "127.0.0.1:0"])
        .env("OBJECTS_PATH", file)
        .env("MAX_IN_FLIGHT", "4000")
        .env("START_TIMEOUT_SECONDS", START_TIMEOUT_SECONDS.to_string());
    let serve = Proc(cmd.spawn().unwrap());
    let meta = wait_finished(s, &prefix);
    let commands = redis_calls(&s.redis_url);
    let objects = meta["objects"].as_u64().unwrap() as usize;
    let total = |field: &str| -> u64 {
        (0..3)
            .map(|z| meta["counts"]["zones"][z][field].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(total("loaded"), objects as u64, "{meta}");
    let seconds = (meta["updated_ms"].as_u64().unwrap() - meta["created_ms"].as_u64().unwrap())
        as f64
        / 1000.0;
    let (results, ready) = if read_results {
        let mut ready = HashMap::new();
        for zone in ["raw", "standardized", "application"] {
            ready.extend(read_topic(s, &format!("{prefix}.ready.{zone}")));
        }
        (read_topic(s, &format!("{prefix}.loaded")), ready)
    } else {
        (HashMap::new(), HashMap::new())
    };
    drop(workers);
    drop(serve);
    RunFigures {
        objects,
        seconds,
        commands,
        retries: total("retries"),
        results,
        ready,
    }
}

/// The run's record once it is finished (the bench runs one run per prefix).
fn wait_finished(s: &Services, prefix: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let ids: Vec<String> = redis_query(
            &s.redis_url,
            redis::cmd("ZRANGE")
                .arg(format!("{prefix}:runs"))
                .arg(0)
                .arg(-1),
        );
        if let Some(id) = ids.first() {
            let text: Option<String> = redis_query(
                &s.redis_url,
                redis::cmd("GET").arg(format!("{prefix}:run:{id}")),
            );
            let meta: serde_json::Value =
                serde_json::from_str(&text.unwrap_or_default()).unwrap_or_default();
            if meta["status"] == "finished" {
                return meta;
            }
        }
        assert!(Instant::now() < deadline, "the run did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The producer timestamp (Unix ms) of each object's first message on `topic`.
fn read_topic(s: &Services, topic: &str) -> HashMap<u64, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &s.bootstrap)
        .set("group.id", "bench-observer")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    let mut remaining = HashMap::new();
    for p in 0..partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        if high > low {
            remaining.insert(p, high);
        }
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut out = HashMap::new();
    while !remaining.is_empty() {
        let m = consumer
            .poll(Duration::from_secs(30))
            .expect("results")
            .unwrap();
        if remaining
            .get(&m.partition())
            .is_some_and(|h| m.offset() + 1 >= *h)
        {
            remaining.remove(&m.partition());
        }
        let v: serde_json::Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default();
        if let (Some(id), Some(ts)) = (v["id"].as_u64(), m.timestamp().to_millis()) {
            out.entry(id).or_insert(ts);
        }
    }
    out
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let engines: Vec<&str> = ["sqlite", "memory"]
        .into_iter()
        .filter(|e| args.is_empty() || args.iter().any(|a| a == e))
        .collect();
    let users = args.iter().any(|a| a == "users");
    let sizes: Vec<usize> = std::env::var("BENCH_OBJECTS")
        .unwrap_or_else(|_| if users { "10000" } else { "10000,100000" }.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    for engine in engines {
        let s = services(engine);
        if users {
            println!(
                "== Tansu {engine} engine, the users' defaults: 3 partitions, one Ready topic, MAX_WORKERS=4"
            );
            // The broker's own capacity on the same topics' shape, for a ratio that does not
            // depend on the machine.
            let at_once = calibrate_both(&s, 50_000, users::partitions()) / 2.0;
            println!(
                "calibration: the broker writing and serving at once on {} partitions: at-once/2 = {at_once:.0} objects/s",
                users::partitions()
            );
            for (i, &n) in sizes.iter().enumerate() {
                users::bench(&s, s._tansu.0.id(), n, &format!("{engine}{i}"), at_once);
            }
            continue;
        }
        println!(
            "== Tansu {engine} engine, {} partition(s) per topic",
            partitions()
        );
        let (produce, consume) = calibrate(&s, 50_000);
        let floor = produce.min(consume) / 2.0;
        println!(
            "calibration: produce {produce:.0} msg/s, consume {consume:.0} msg/s; min/2 = {floor:.0}"
        );
        let at_once = calibrate_both(&s, 50_000, partitions()) / 2.0;
        println!(
            "calibration: produced and consumed at once (the product's messages, with their header): {:.0} msg/s; /2 = {at_once:.0}",
            at_once * 2.0
        );
        let trips = round_trips(&s, 300, 5, "first");
        println!(
            "calibration: round trip with no work (two hops, as a chain link; fetch.wait.max.ms=5) p50 {:.1} ms, p99 {:.1} ms",
            percentile(&trips, 0.5) as f64 / 1000.0,
            percentile(&trips, 0.99) as f64 / 1000.0
        );
        for (i, &n) in sizes.iter().enumerate() {
            let file = generated(s.dir.path(), n);
            let f = run(&s, &file, &format!("{engine}{i}"), 10, false);
            let rate = f.objects as f64 / f.seconds;
            println!(
                "{n} objects: {:.2} s, {rate:.0} objects/s ({:.2} of min/2, {:.2} of at-once/2), {:.2} Redis commands per object{}",
                f.seconds,
                rate / floor,
                rate / at_once,
                f.commands as f64 / f.objects as f64,
                lost(&f)
            );
        }
        // The broker alone again, now that it holds the runs above: what the chain's links are
        // measured against.
        let trips = round_trips(&s, 300, 5, "chain");
        println!(
            "calibration before the chain: round trip p50 {:.1} ms, p99 {:.1} ms",
            percentile(&trips, 0.5) as f64 / 1000.0,
            percentile(&trips, 0.99) as f64 / 1000.0
        );
        let (file, ids) = chain(s.dir.path(), 1000);
        let f = run(&s, &file, &format!("{engine}chain"), 5, true);
        let mut links: Vec<i64> = ids
            .windows(2)
            .filter_map(|w| Some(f.results.get(&w[1])? - f.results.get(&w[0])?))
            .collect();
        links.sort_unstable();
        // Where a link's time goes: the orchestrator's side (the parent's result fetched and
        // applied, the child's Ready sent) and the worker's (the Ready delivered, handled, the
        // result sent); each includes one produce and one fetch.
        let split = |from: &HashMap<u64, i64>, to: &HashMap<u64, i64>, shift: usize| {
            let mut v: Vec<i64> = ids
                .windows(2)
                .filter_map(|w| Some(to.get(&w[1])? - from.get(&w[1 - shift])?))
                .collect();
            v.sort_unstable();
            v
        };
        let orchestrator_side = split(&f.results, &f.ready, 1);
        let worker_side = split(&f.ready, &f.results, 0);
        println!(
            "1,000-deep chain (fetch.wait.max.ms=5): {:.2} s; parent result -> own result: p50 {} ms, p99 {} ms ({} links); of which parent result -> Ready p50 {} ms, Ready -> result p50 {} ms",
            f.seconds,
            percentile(&links, 0.5),
            percentile(&links, 0.99),
            links.len(),
            percentile(&orchestrator_side, 0.5),
            percentile(&worker_side, 0.5),
        );
        if f.retries > 0 {
            println!("  chain{}", lost(&f));
        }
    }
}

/// What a run lost on the broker, if anything: attempts sent again after the start timeout
/// (no attempt fails with `simulate:0`), each costing the run that long.
fn lost(f: &RunFigures) -> String {
    if f.retries == 0 {
        return String::new();
    }
    format!(
        "; LOST MESSAGES: {} attempts sent again after the {START_TIMEOUT_SECONDS} s start timeout (in the time above)",
        f.retries
    )
}
