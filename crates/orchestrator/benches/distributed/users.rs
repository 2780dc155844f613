//! The run users have (`-- users`): the defaults a deployment gets (three partitions, one shared
//! Ready topic, the default fetch wait, `MAX_WORKERS=4` per worker), the layered graph (a tenth
//! raw, three tenths standardized, six tenths application, 1–3 parents each) submitted through
//! `POST /api/runs` while a client polls `GET /api/runs/{id}` 100 times a second and another
//! follows `/api/events`. It prints each process's CPU while the stack is idle, then objects/s,
//! serve's CPU µs per object and peak RSS, and Redis bytes per object of the finished run.

use crate::files::layered;
use crate::{Proc, Services, bin};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Partitions per topic in this run: the default a deployment gets (`KAFKA_PARTITIONS`).
pub(crate) fn partitions() -> i32 {
    orchestrator_bus_kafka::KafkaSettings::new("").partitions
}

/// CPU seconds (user and system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, asked once).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A process's peak resident memory (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn redis_used_memory(url: &str) -> u64 {
    let info: String = crate::redis_query(url, redis::cmd("INFO").arg("memory"));
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:")?.trim().parse().ok())
        .unwrap_or(0)
}

fn idle_seconds() -> u64 {
    std::env::var("BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// One user-shaped run of `n` objects on `s`.
pub(crate) fn bench(s: &Services, tansu_pid: u32, n: usize, tag: &str, at_once: f64) {
    let prefix = format!("users{tag}");
    let env = |cmd: &mut Command| {
        crate::stack_env(cmd, s, &prefix).stdout(Stdio::null());
    };
    let log = |name: &str| s.dir.path().join(format!("{prefix}-{name}.log"));
    let mut workers = Vec::new();
    let mut logs = Vec::new();
    for w in crate::WORKERS {
        logs.push(log(w));
        let mut cmd = Command::new(bin(w));
        env(&mut cmd);
        // The workers say in their log when they have their partitions (at info).
        cmd.env("HANDLER", "simulate:0")
            .env("LOG_LEVEL", "info")
            .env("MAX_WORKERS", "4")
            .env("WORKER_HTTP_ADDR", "127.0.0.1:0")
            .stderr(Stdio::from(std::fs::File::create(log(w)).unwrap()));
        workers.push(Proc(cmd.spawn().unwrap()));
    }
    crate::services::wait_assigned(&logs, Duration::from_secs(120));
    let port = crate::services::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(bin("orchestrator"));
    env(&mut cmd);
    cmd.args(["serve", "--http", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::from(std::fs::File::create(log("serve")).unwrap()));
    let serve = Proc(cmd.spawn().unwrap());
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{base}/health/readiness"))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "serve is not ready");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Idle: every process of the stack, no run in flight.
    std::thread::sleep(Duration::from_secs(5));
    let mut pids = vec![("broker", tansu_pid), ("serve", serve.0.id())];
    pids.extend(
        ["ingestion", "standardization", "application"]
            .into_iter()
            .zip(workers.iter().map(|w| w.0.id())),
    );
    let before: Vec<f64> = pids.iter().map(|(_, p)| cpu_seconds(*p)).collect();
    let idle = idle_seconds();
    std::thread::sleep(Duration::from_secs(idle));
    let shares: Vec<String> = pids
        .iter()
        .zip(before)
        .map(|((name, pid), b)| {
            format!(
                "{name} {:.1} %",
                (cpu_seconds(*pid) - b) * 100.0 / idle as f64
            )
        })
        .collect();
    println!("idle for {idle} s, CPU of a core: {}", shares.join(", "));

    // The run.
    let file = layered(s.dir.path(), n);
    let body = std::fs::read(&file).unwrap();
    let redis_before = redis_used_memory(&s.redis_url);
    let serve_cpu = cpu_seconds(serve.0.id());
    let broker_cpu = cpu_seconds(tansu_pid);
    let answer: serde_json::Value = http
        .post(format!("{base}/api/runs"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = answer["run_id"].as_str().expect("a run id").to_string();
    let done = Arc::new(AtomicBool::new(false));
    let follower = {
        let (done, url) = (done.clone(), format!("{base}/api/events?run={id}"));
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut response = client.get(url).send().unwrap();
            let mut buf = [0u8; 16384];
            let mut bytes = 0usize;
            while !done.load(Ordering::Relaxed) {
                match response.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => bytes += k,
                }
            }
            bytes
        })
    };
    let mut polls = 0u64;
    let report = loop {
        let started = Instant::now();
        let view: serde_json::Value = http
            .get(format!("{base}/api/runs/{id}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        polls += 1;
        if view["run"]["status"] == "finished" {
            break view;
        }
        assert!(polls < 100 * 1800, "the run did not finish: {view}");
        std::thread::sleep(Duration::from_millis(10).saturating_sub(started.elapsed()));
    };
    done.store(true, Ordering::Relaxed);
    let run = &report["run"];
    let seconds =
        (run["updated_ms"].as_u64().unwrap() - run["created_ms"].as_u64().unwrap()) as f64 / 1000.0;
    let serve_cpu_at_end = cpu_seconds(serve.0.id());
    let serve_cpu = serve_cpu_at_end - serve_cpu;
    let broker_cpu = cpu_seconds(tansu_pid) - broker_cpu;
    // Serve archives a finished run's records in the background: what Redis keeps is measured
    // once that is done (its CPU is reported apart from the run's).
    let archiving = Instant::now();
    let live = format!("{prefix}:run:{id}:objects");
    while crate::redis_query::<bool>(&s.redis_url, redis::cmd("EXISTS").arg(&live))
        && archiving.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let archived = if crate::redis_query::<bool>(&s.redis_url, redis::cmd("EXISTS").arg(&live)) {
        "not archived within 120 s".to_string()
    } else {
        format!(
            "archived in {:.1} s, serve {:.2} CPU-s",
            archiving.elapsed().as_secs_f64(),
            cpu_seconds(serve.0.id()) - serve_cpu_at_end
        )
    };
    let rss = peak_rss_mib(serve.0.id());
    let redis_bytes = redis_used_memory(&s.redis_url).saturating_sub(redis_before);
    assert_eq!(
        report["counts"]["loaded"].as_u64(),
        Some(n as u64),
        "every object loaded: {report}"
    );
    println!(
        "{n} objects (layered, 1-3 parents): {seconds:.2} s, {:.0} objects/s ({:.2} of at-once/2); serve {:.1} µs CPU per object ({serve_cpu:.2} s), peak RSS {rss:.0} MiB; Redis {:.0} bytes per object; broker {broker_cpu:.1} CPU-s; {polls} polls of the run",
        n as f64 / seconds,
        n as f64 / seconds / at_once,
        serve_cpu * 1e6 / n as f64,
        redis_bytes as f64 / n as f64,
    );
    println!(
        "  Redis bytes per object by key: {} ({archived})",
        redis_breakdown(&s.redis_url, &prefix, n)
    );
    drop(serve);
    drop(workers);
    let followed = follower.join().unwrap_or(0);
    println!("  the live-view follower received {followed} bytes");
}

/// `MEMORY USAGE` of every key under `prefix`, summed by the key's kind (its name with the
/// run's id left out), per object.
fn redis_breakdown(url: &str, prefix: &str, n: usize) -> String {
    let keys: Vec<String> = crate::redis_query(url, redis::cmd("KEYS").arg(format!("{prefix}:*")));
    let mut by_kind: std::collections::BTreeMap<String, u64> = Default::default();
    for key in keys {
        let bytes: Option<u64> = crate::redis_query(
            url,
            redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&key)
                .arg("SAMPLES")
                .arg(0),
        );
        let kind: Vec<&str> = key
            .split(':')
            .skip(1)
            .filter(|part| !part.starts_with("run-"))
            .collect();
        *by_kind.entry(kind.join(":")).or_default() += bytes.unwrap_or(0);
    }
    by_kind
        .iter()
        .filter(|(_, b)| **b as f64 / n as f64 >= 1.0)
        .map(|(k, b)| format!("{k} {:.0}", *b as f64 / n as f64))
        .collect::<Vec<_>>()
        .join(", ")
}
