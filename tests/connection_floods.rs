//! Reachable under connection floods: `serve` under an open-files limit of 1024 (soft and hard),
//! with API tokens, takes 1,100 connections that send nothing or half a request. Its health
//! listener answers within a second throughout, the idle connections are closed within the
//! header timeout, a token-bearing API request succeeds once they are gone, and the run in
//! flight finishes. Live-event followers past `MAX_EVENT_SUBSCRIBERS` are refused with 503.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use cluster::{Cluster, Proc};
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "a-token-for-the-flood-test";
/// `HTTP_HEADER_TIMEOUT_SECONDS` of the test's serve.
const HEADER_TIMEOUT: u64 = 3;

/// The address a line of the log names after `prefix` (`serving … on http://ADDR`).
fn address_in_log(cluster: &Cluster, log: &str, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(cluster.dir().join(log)).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with(prefix)) {
            let at = line.find("http://").unwrap();
            return line[at..].trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no {prefix:?} in the log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_stays_reachable_under_a_connection_flood() {
    let cluster = Cluster::new("flood");
    let objects = generated(cluster.dir(), 600, 4);
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=1024:1024", "--", bin()]);
    cluster.env(&mut cmd);
    cmd.args([
        "serve",
        "--http",
        "127.0.0.1:0",
        "--health-addr",
        "127.0.0.1:0",
        "--api-token",
        TOKEN,
    ])
    .env("OBJECTS_PATH", &objects)
    .env("HTTP_HEADER_TIMEOUT_SECONDS", HEADER_TIMEOUT.to_string())
    .env("MAX_EVENT_SUBSCRIBERS", "20");
    let log = std::fs::File::create(cluster.dir().join("serve.log")).unwrap();
    let _serve = Proc(cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap());
    let health = address_in_log(&cluster, "serve.log", "serving health and metrics on");
    let base = cluster.http_base("serve.log");
    cluster.wait_ready(&health);
    // Slow enough that the run is still in flight through the flood and the followers.
    let run_started = Instant::now();
    let _workers = cluster.workers("simulate:150");
    let host = base.trim_start_matches("http://").to_string();

    // 1,100 connections: half send nothing, half send half a request.
    let flood: Vec<TcpStream> = (0..1100)
        .filter_map(|i| {
            let mut s = TcpStream::connect(&host).ok()?;
            if i % 2 == 1 {
                let _ = s.write_all(b"GET /api/runs HTTP/1.1\r\nHost: x\r\n");
            }
            Some(s)
        })
        .collect();
    assert!(
        flood.len() > 1024,
        "only {} connections opened",
        flood.len()
    );
    let opened = Instant::now();

    // Health answers within a second throughout, on its own listener.
    let probe = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(1))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    while opened.elapsed() < Duration::from_secs(HEADER_TIMEOUT + 2) {
        let answer = probe.get(format!("{health}/health/liveness")).send();
        assert!(
            answer.as_ref().is_ok_and(|a| a.status().is_success()),
            "liveness failed {:?} into the flood: {answer:?}",
            opened.elapsed()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The idle and half-sent connections were closed within the header timeout (plus a
    // margin): reading finds their end. Those refused at once are closed as well.
    for (i, mut s) in flood.into_iter().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 512];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue, // a 408 or 503 answer before the close
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        assert!(
            closed,
            "connection {i} still open {:?} after it was opened",
            opened.elapsed()
        );
    }
    // A token-bearing API request succeeds; the run finishes.
    let api = reqwest::blocking::Client::new();
    let answer = api
        .get(format!("{base}/api/runs"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    // Followers of the live events past the cap: refused, with a clear status.
    let mut followers = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..30 {
        let mut s = TcpStream::connect(&host).unwrap();
        let request =
            format!("GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
        s.write_all(request.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        if head.starts_with("HTTP/1.1 200") {
            followers.push(s);
        } else {
            refused.push(head);
        }
    }
    assert_eq!(followers.len(), 20, "{refused:?}");
    assert_eq!(refused.len(), 10);
    assert!(
        refused
            .iter()
            .all(|h| h.starts_with("HTTP/1.1 503") && h.contains("MAX_EVENT_SUBSCRIBERS")),
        "{refused:?}"
    );
    let in_flight = cluster.status();
    assert_eq!(
        in_flight["run"]["status"], "running",
        "the run ended before the flood was over"
    );
    let status = cluster.wait_finished(Duration::from_secs(120));
    assert_eq!(status["run"]["summary"]["loaded"], 600, "{status}");
    // In its usual time: 600 objects of 150 ms, 9 at a time, in three layers.
    assert!(
        run_started.elapsed() < Duration::from_secs(60),
        "{:?}",
        run_started.elapsed()
    );

    let metrics = probe
        .get(format!("{health}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("orchestrator_http_connections_refused_total"),
        "{metrics}"
    );
}
