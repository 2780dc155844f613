//! `orchestrator run` end to end, as real processes: dependency order, retries with a real
//! `command` handler, dead letters and upstream failures, the `http` handler, and the health and
//! metrics endpoints (kill -9, interrupts, resume and reruns: `embedded_resume.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use common::*;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn default_run_completes_the_sample() {
    // The README's first command, as a user types it (a shorter simulate keeps the test quick).
    let out = orchestrator(&[
        "run",
        tools("sample-objects.json").to_str().unwrap(),
        "--handler",
        "simulate:5",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("total                  37       37"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr)
            .contains("progress: 1-Raw 12/12, 2-Standardized 14/14, 3-Application 11/11")
    );
}

#[test]
fn a_state_directory_keeps_finished_runs_for_their_retention_only() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let sample = tools("sample-objects.json");
    let run = |ttl: &str| {
        let (code, _, err) = run_json(&[
            sample.to_str().unwrap(),
            "--handler",
            "simulate:0",
            "--state-dir",
            state,
            "--retry-ttl-seconds",
            ttl,
        ]);
        assert_eq!(code, 0, "{err}");
    };
    let runs = || -> Vec<String> {
        let out = orchestrator(&["status", "--json", "--state-dir", state]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_string())
            .collect()
    };
    // 0 keeps finished runs forever.
    run("0");
    run("0");
    let both = runs();
    assert_eq!(both.len(), 2);
    std::thread::sleep(Duration::from_millis(1500));
    // Kept one second: the two runs finished longer ago go when this one finishes.
    run("1");
    let left = runs();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!both.contains(&left[0]));
    // A run that finished within its retention stays.
    run("60");
    assert_eq!(runs().len(), 2);
}

#[test]
fn every_object_runs_once_after_all_its_parents() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let handler = logging_handler(dir.path(), &log, "0.02");
    let file = fixture("layered.json");
    let (code, v, err) = run_json(&[file.to_str().unwrap(), "--handler", &handler]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["summary"]["loaded"], 9);
    let lines = log_lines(&log);
    assert_eq!(
        lines.iter().filter(|l| l.2 == "start").count(),
        9,
        "{lines:?}"
    );
    let ids: HashSet<u64> = lines.iter().map(|l| l.0).collect();
    assert_eq!(ids.len(), 9);
    assert_dependency_order(&lines, &parents_of(&file));
}

#[test]
fn a_command_that_fails_twice_then_succeeds_is_retried_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = script(
        dir.path(),
        "flaky.sh",
        &format!(
            "f='{}'/$ORCH_OBJECT_ID.count\nn=$(cat \"$f\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$f\"\n\
             if [ \"$ORCH_OBJECT_ID\" = 2002 ] && [ $n -le 2 ]; then echo \"transient failure $n\" >&2; exit 1; fi\n\
             [ \"$ORCH_ATTEMPT\" = \"$n\" ] || {{ echo \"attempt $ORCH_ATTEMPT but run $n\" >&2; exit 65; }}",
            dir.path().display()
        ),
    );
    let handler = format!("command:{}", flaky.display());
    let (code, v, err) = run_json(&[
        fixture("layered.json").to_str().unwrap(),
        "--handler",
        &handler,
        "--retry-base-ms",
        "10",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["summary"]["loaded"], 9);
    assert_eq!(v["summary"]["retries"], 2);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("2002.count"))
            .unwrap()
            .trim(),
        "3"
    );
}

#[test]
fn a_permanent_failure_fails_only_its_descendants() {
    let dir = tempfile::tempdir().unwrap();
    let failing = script(
        dir.path(),
        "fail.sh",
        "if [ \"$ORCH_OBJECT_ID\" = 2005 ]; then echo 'source unreachable' >&2; exit 1; fi",
    );
    let handler = format!("command:{}", failing.display());
    let (code, v, err) = run_json(&[
        fixture("layered.json").to_str().unwrap(),
        "--handler",
        &handler,
        "--max-retries",
        "1",
        "--retry-base-ms",
        "5",
    ]);
    assert_eq!(code, 1, "{err}");
    let s = &v["summary"];
    assert_eq!(
        (
            s["loaded"].as_u64(),
            s["failed"].as_u64(),
            s["upstream_failed"].as_u64()
        ),
        (Some(6), Some(1), Some(2))
    );
    assert_eq!(s["retries"], 1);
    let dead = &v["dead_letters"][0];
    assert_eq!(dead["id"], 2005);
    assert!(
        dead["reason"]
            .as_str()
            .unwrap()
            .contains("exit 1: source unreachable"),
        "{dead}"
    );
}

#[test]
fn exit_65_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let failing = script(
        dir.path(),
        "bad.sh",
        "if [ \"$ORCH_OBJECT_ID\" = 1001 ]; then echo 'bad data' >&2; exit 65; fi",
    );
    let handler = format!("command:{}", failing.display());
    let (code, v, err) = run_json(&[
        fixture("layered.json").to_str().unwrap(),
        "--handler",
        &handler,
        "--retry-base-ms",
        "5",
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(v["summary"]["retries"], 0);
    assert_eq!(v["summary"]["upstream_failed"], 2); // 2001 and 3000
}

#[test]
fn a_task_past_its_timeout_is_killed_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let slow = script(
        dir.path(),
        "slow.sh",
        &format!(
            "f='{}'/$ORCH_OBJECT_ID.count\nn=$(cat \"$f\" 2>/dev/null || echo 0); echo $((n+1)) > \"$f\"\n\
             if [ \"$ORCH_OBJECT_ID\" = 3005 ] && [ $n = 0 ]; then sleep 30; fi",
            dir.path().display()
        ),
    );
    let handler = format!("command:{}", slow.display());
    let start = Instant::now();
    let (code, v, err) = run_json(&[
        fixture("layered.json").to_str().unwrap(),
        "--handler",
        &handler,
        "--task-timeout-seconds",
        "1",
        "--retry-base-ms",
        "5",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["summary"]["retries"], 1);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the 30 s sleep was not killed"
    );
}

/// A one-thread HTTP service: answers by object id, counting calls.
fn http_service() -> (String, std::thread::JoinHandle<HashMap<u64, u32>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut calls: HashMap<u64, u32> = HashMap::new();
        listener.set_nonblocking(false).unwrap();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            let mut line = String::new();
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            if first.starts_with("GET /stop") {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                break;
            }
            let task: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let id = task["id"].as_u64().unwrap();
            assert_eq!(task["event"], "ObjectReady");
            assert_eq!(task["object"]["IdObjet"], id);
            let n = calls.entry(id).or_default();
            *n += 1;
            let status = match (id, *n) {
                (2002, 1) => "503 Service Unavailable",
                (3005, _) => "422 Unprocessable Entity",
                _ => "200 OK",
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                    .as_bytes(),
            );
        }
        calls
    });
    (format!("http://{addr}"), handle)
}

#[test]
fn the_http_handler_maps_statuses_to_outcomes() {
    let (url, service) = http_service();
    let handler = format!("http:{url}/load");
    let (code, v, err) = run_json(&[
        fixture("layered.json").to_str().unwrap(),
        "--handler",
        &handler,
        "--retry-base-ms",
        "5",
    ]);
    let _ = std::net::TcpStream::connect(url.trim_start_matches("http://"))
        .and_then(|mut s| s.write_all(b"GET /stop HTTP/1.1\r\ncontent-length: 0\r\n\r\n"));
    let calls = service.join().unwrap();
    assert_eq!(code, 1, "{err}");
    assert_eq!(calls[&2002], 2, "5xx is retried");
    assert_eq!(calls[&3005], 1, "4xx is not retried");
    assert_eq!(v["summary"]["loaded"], 8);
    assert_eq!(v["summary"]["failed"], 1);
    // The response's body is the attempt's output, as a program's would be.
    let failed = &v["failures"][0];
    assert_eq!(failed["id"], 3005, "{v}");
    assert_eq!(failed["attempts"][0]["output"], "ok", "{failed}");
    assert!(
        failed["attempts"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("422"),
        "{failed}"
    );
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

#[test]
fn health_and_metrics_are_served_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let handler = logging_handler(dir.path(), &log, "0.4");
    let file = fixture("layered.json");
    let mut child = Command::new(bin())
        .args([
            "run",
            file.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
            "--handler",
            &handler,
            "--progress",
            "none",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no address printed"
        );
        if let Some(a) = line
            .trim()
            .strip_prefix("serving the console, the runs API, health and metrics on http://")
        {
            break a.to_string();
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while log_lines(&log).iter().filter(|l| l.2 == "end").count() < 3 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(http_get(&addr, "/health/liveness").0, 200);
    assert_eq!(http_get(&addr, "/health/readiness").0, 200);
    let (code, metrics) = http_get(&addr, "/metrics");
    assert_eq!(code, 200);
    for name in [
        "orchestrator_uptime_seconds",
        "orchestrator_ready_published_total{zone=\"1-Raw\"} 3",
        "orchestrator_loaded_received_total{zone=\"1-Raw\"}",
        "orchestrator_failed_received_total{zone=\"1-Raw\"} 0",
        "orchestrator_objects_in_flight{zone=\"2-Standardized\"}",
        "orchestrator_objects_waiting{zone=\"3-Application\"}",
        "orchestrator_retries_total{zone=\"1-Raw\"} 0",
        "orchestrator_dead_letters_total{zone=\"1-Raw\"} 0",
        "orchestrator_dispatch_to_result_seconds_bucket{zone=\"1-Raw\",le=\"0.5\"}",
        // 10 ms to 10 minutes.
        "orchestrator_dispatch_to_result_seconds_bucket{zone=\"1-Raw\",le=\"0.01\"}",
        "orchestrator_dispatch_to_result_seconds_bucket{zone=\"1-Raw\",le=\"600\"}",
        // Queue wait and task time, per zone.
        "orchestrator_queue_wait_seconds_count{zone=\"1-Raw\"}",
        "orchestrator_task_seconds_bucket{zone=\"2-Standardized\",le=\"0.01\"}",
        // Every counter from the start, at zero.
        "orchestrator_attempts_expired_total{zone=\"3-Application\"} 0",
        "orchestrator_results_ignored_total{reason=\"unknown_run\"} 0",
        "orchestrator_build_info{commit=",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }
    assert!(child.wait().unwrap().success());
}

#[test]
fn bad_options_are_usage_errors() {
    let file = fixture("layered.json");
    let f = file.to_str().unwrap();
    for (args, message) in [
        (
            vec!["run", f, "--handler", "teleport"],
            "unknown handler kind",
        ),
        (
            vec!["run", f, "--zone-handler", "gold=simulate"],
            "unknown zone",
        ),
        (
            vec!["run", f, "--resume"],
            "--resume needs a state directory",
        ),
        (
            vec!["run", f, "--zone-retry", "raw=fast"],
            "expected ZONE=BASE_MS:CAP_MS",
        ),
    ] {
        let out = orchestrator(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(message),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}
