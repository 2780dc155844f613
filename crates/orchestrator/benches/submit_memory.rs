//! Peak memory of `serve` taking one large submission over HTTP (the whole file in one POST), on
//! a real Tansu broker and redis-server, beside the embedded run of the same file. Build the
//! release binary first, then: `cargo build --release -p orchestrator && cargo bench -p
//! orchestrator --bench submit_memory` (`BENCH_OBJECTS=N`, default 1,000,000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../tests/common/services.rs"]
mod services;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> String {
    std::env::var("ORCHESTRATOR_BIN").unwrap_or_else(|_| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/orchestrator");
        root.display().to_string()
    })
}

/// Peak resident memory of a live process, in MiB.
fn peak_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let objects: usize = std::env::var("BENCH_OBJECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.json");
    let n = objects.to_string();
    let made = Command::new(bin())
        .args([
            "generate",
            "--objects",
            &n,
            "--seed",
            "1",
            "--max-parents",
            "3",
            "-o",
        ])
        .arg(&file)
        .status()
        .unwrap();
    assert!(made.success());
    let body = std::fs::read(&file).unwrap();
    let (peak, idle, took) = serve_peak(&body);
    println!(
        "serve: {objects} objects ({:.0} MB body) submitted in {:.2} s; peak RSS {peak:.0} MiB ({:.1}× the body; {idle:.0} MiB before)",
        body.len() as f64 / 1e6,
        took.as_secs_f64(),
        peak * 1024.0 * 1024.0 / body.len() as f64
    );
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(bin())
        .args([
            "run",
            "--handler",
            "simulate:0",
            "--progress",
            "none",
            "--json",
        ])
        .arg(&file)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kib: f64 = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0.0);
    println!(
        "embedded run of the same file: peak RSS {:.0} MiB",
        kib / 1024.0
    );
}

/// Starts `serve` on a broker and Redis of its own, posts `body` once, and returns its peak
/// RSS after, before, and how long the submission took.
fn serve_peak(body: &[u8]) -> (f64, f64, Duration) {
    let kafka = services::kafka();
    let redis = services::redis();
    let port = services::free_port();
    let p = services::unique_prefix("submit-memory");
    let mut serve = Command::new(bin())
        .args(["serve", "--http", &format!("127.0.0.1:{port}")])
        .args(["--max-input-bytes", &(body.len() * 2).to_string()])
        .env("KAFKA_BOOTSTRAP", &kafka.bootstrap)
        .env("REDIS_URL", &redis.url)
        .env("REDIS_PREFIX", &p)
        .env("TOPIC_READY", format!("{p}.ready"))
        .env("TOPIC_LOADED", format!("{p}.loaded"))
        .env("TOPIC_PROGRESS", format!("{p}.progress"))
        .env("TOPIC_FAILED", format!("{p}.failed"))
        .env("TOPIC_DLQ", format!("{p}.dlq"))
        .env_remove("OBJECTS_PATH")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !client
        .get(format!("{base}/health/readiness"))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "serve never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    let idle = peak_mib(serve.id());
    let started = Instant::now();
    let answer = client
        .post(format!("{base}/api/runs"))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201, "{:?}", answer.text());
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let peak = peak_mib(serve.id());
    let _ = serve.kill();
    let _ = serve.wait();
    (peak, idle, took)
}
