//! Operating runs of `serve` end to end, on a real broker and Redis with the worker binaries and
//! a `command:` handler: a failing object's attempts with their output and reasons (API and
//! `runs logs`), `runs retry` of one object, `runs rerun` of every failure (what loaded is
//! untouched), the run's graph, and a cancel that kills the programs in flight; with API tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use cluster::{Cluster, http};
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TOKEN: &str = "a-token-of-the-operators";
/// The sleep of the long tasks: no other program runs it.
const LONG_SLEEP: &str = "97.25";

/// `orchestrator ARGS` against `base` with the token.
fn client(base: &str, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("ORCHESTRATOR_URL", base)
        .env("API_TOKEN", TOKEN)
        .output()
        .unwrap()
}

fn get(base: &str, path: &str) -> (u16, String) {
    let r = http()
        .get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn get_json(base: &str, path: &str) -> Value {
    let (status, body) = get(base, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn post(base: &str, path: &str) -> (u16, Value) {
    let r = http()
        .post(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// 1001 → 2001 → 3001 ← 1003, 1002 → 2002 → 3002; long tasks 1101–1104 apart.
fn objects(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let o = |id: u64, parent: &str| {
        format!(r#"{{"IdObjet":{id},"NomObjet":"o{id}","IdObjet_Parent":{parent}}}"#)
    };
    let failing = [
        o(1001, "null"),
        o(1002, "null"),
        o(1003, "null"),
        o(2001, "1001"),
        o(2002, "1002"),
        o(3001, r#""2001,1003""#),
        o(3002, "2002"),
    ];
    let long: Vec<String> = (1101..=1104).map(|id| o(id, "null")).collect();
    let a = dir.join("failing.json");
    let b = dir.join("long.json");
    std::fs::write(&a, format!("[{}]", failing.join(","))).unwrap();
    std::fs::write(&b, format!("[{}]", long.join(","))).unwrap();
    (a, b)
}

/// Writes to stdout and stderr; fails while `broken-ID` exists; objects 11xx run long.
fn handler(dir: &Path) -> String {
    let body = format!(
        r#"echo "out: $ORCH_OBJECT_ID attempt $ORCH_ATTEMPT"
case "$ORCH_OBJECT_ID" in 11*) sleep {LONG_SLEEP} ;; esac
if [ -f "{dir}/broken-$ORCH_OBJECT_ID" ]; then
  echo "err: no input for $ORCH_OBJECT_ID" >&2
  exit 1
fi
echo "loaded $ORCH_OBJECT_ID""#,
        dir = dir.display()
    );
    format!("command:{}", script(dir, "handler.sh", &body).display())
}

fn state_of(base: &str, run: &str, id: u64) -> (String, u64) {
    let o = get_json(base, &format!("/api/runs/{run}/objects/{id}"));
    (
        o["state"].as_str().unwrap().to_string(),
        o["attempt"].as_u64().unwrap(),
    )
}

fn long_sleeps() -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(LONG_SLEEP))
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn failures_are_inspected_retried_and_rerun_and_a_cancel_kills_work_in_flight() {
    let cluster = Cluster::new("operate");
    let dir = cluster.dir().to_path_buf();
    let (failing, long) = objects(&dir);
    for id in [2001, 2002] {
        std::fs::write(dir.join(format!("broken-{id}")), "").unwrap();
    }
    let flags = [
        "--api-token",
        TOKEN,
        "--max-retries",
        "1",
        "--retry-base-ms",
        "50",
    ];
    let _serve = cluster.serve(None, &flags, "serve.log");
    let base = cluster.http_base("serve.log");
    let _workers = cluster.workers(&handler(&dir));
    cluster.wait_ready(&base);

    // A run whose two objects fail twice each.
    let out = client(
        &base,
        &["submit", failing.to_str().unwrap(), "--wait", "--json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = view["run"]["run_id"].as_str().unwrap().to_string();

    // Each attempt with its worker, times, reason and output (stdout and stderr).
    let o = get_json(&base, &format!("/api/runs/{run}/objects/2001"));
    assert_eq!(o["state"], "failed", "{o}");
    let attempts = o["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{o}");
    for (n, a) in attempts.iter().enumerate() {
        assert_eq!(a["attempt"], n as u64 + 1);
        assert_eq!(a["outcome"], "failed");
        assert_eq!(a["reason"], "exit 1: err: no input for 2001", "{a}");
        assert!(
            a["worker"].as_str().unwrap().contains("standardization"),
            "{a}"
        );
        assert!(a["ended_ms"].as_u64() >= a["started_ms"].as_u64(), "{a}");
        let (status, output) = get(
            &base,
            &format!("/api/runs/{run}/objects/2001/attempts/{}/output", n + 1),
        );
        assert_eq!(status, 200);
        // Both streams, whole (which of two writes a moment apart came first is the pipes').
        let mut lines: Vec<&str> = output.lines().collect();
        lines.sort();
        let first = format!("out: 2001 attempt {}", n + 1);
        assert_eq!(
            lines,
            ["err: no input for 2001", first.as_str()],
            "{output}"
        );
    }
    assert_eq!(o["definition"]["NomObjet"], "o2001");
    let blocked = get_json(&base, &format!("/api/runs/{run}/objects/3001"));
    assert_eq!(
        (blocked["state"].as_str(), blocked["blocked_by"].as_u64()),
        (Some("upstream_failed"), Some(2001))
    );
    let out = client(&base, &["runs", "logs", &run, "2001"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let logs = text(&out.stdout);
    // `status --object` prints the same, read from the store.
    let status = cluster.status_of(&["--run", &run, "--object", "2001"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    assert_eq!(
        text(&status.stdout),
        logs,
        "runs logs and status --object differ"
    );
    for expected in [
        "--- attempt 1: failed",
        "--- attempt 2: failed",
        "reason: exit 1: err: no input for 2001",
        "out: 2001 attempt 2",
    ] {
        assert!(logs.contains(expected), "{expected:?} not in:\n{logs}");
    }

    // What cannot be found, or read, is said so.
    for (path, status) in [
        ("/api/runs/run-none/objects/2001", 404),
        (&format!("/api/runs/{run}/objects/9999"), 404),
        (
            &format!("/api/runs/{run}/objects/2001/attempts/7/output"),
            404,
        ),
        (&format!("/api/runs/{run}/objects/abc"), 400),
        (&format!("/api/runs/{run}/graph?format=png"), 400),
        (&format!("/api/runs/{run}/graph?around=9999"), 404),
    ] {
        assert_eq!(get(&base, path).0, status, "{path}");
    }
    assert_eq!(post(&base, "/api/runs/run-none/rerun").0, 404);
    assert_eq!(
        post(&base, &format!("/api/runs/{run}/objects/1001/retry")).0,
        409,
        "loaded: nothing to retry"
    );
    let unauthenticated = http()
        .get(format!("{base}/api/runs/{run}/objects/2001"))
        .send()
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);

    // The graph with its states, cut around an object.
    let (status, dot) = get(&base, &format!("/api/runs/{run}/graph?format=dot"));
    assert_eq!(status, 200);
    assert!(
        dot.starts_with("digraph") && dot.contains("\"2001\" -> \"3001\""),
        "{dot}"
    );
    let g = get_json(&base, &format!("/api/runs/{run}/graph?around=2001&depth=1"));
    let mut ids: Vec<u64> = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_u64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [1001, 2001, 3001]);

    // Fixed, 2001 is retried: it and 3001 load; 2002 and 3002 stay as they were.
    std::fs::remove_file(dir.join("broken-2001")).unwrap();
    let out = client(&base, &["runs", "retry", &run, "2001", "--wait"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "2002 still failed: {}",
        text(&out.stderr)
    );
    assert_eq!(state_of(&base, &run, 2001), ("loaded".into(), 3));
    assert_eq!(state_of(&base, &run, 3001), ("loaded".into(), 1));
    assert_eq!(state_of(&base, &run, 2002), ("failed".into(), 2));
    assert_eq!(state_of(&base, &run, 3002), ("upstream_failed".into(), 0));
    assert_eq!(
        state_of(&base, &run, 1001),
        ("loaded".into(), 1),
        "untouched"
    );

    // Fixed, every failure is rerun: the run ends with everything loaded.
    std::fs::remove_file(dir.join("broken-2002")).unwrap();
    let out = client(&base, &["runs", "rerun", &run, "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(state_of(&base, &run, 2002), ("loaded".into(), 3));
    assert_eq!(
        state_of(&base, &run, 1002),
        ("loaded".into(), 1),
        "untouched"
    );
    assert_eq!(
        post(&base, &format!("/api/runs/{run}/rerun")).0,
        409,
        "nothing left to rerun"
    );

    // Long tasks: a rerun is refused while the run runs; a cancel kills them within seconds.
    let out = client(&base, &["submit", long.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let submitted: Value = serde_json::from_slice(&out.stdout).unwrap();
    let long_run = submitted["run_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while long_sleeps() < 3 {
        assert!(Instant::now() < deadline, "the long tasks never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = post(&base, &format!("/api/runs/{long_run}/rerun"));
    assert_eq!(status, 409, "{body}");
    let cancelled_at = Instant::now();
    let out = client(&base, &["runs", "cancel", &long_run]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    loop {
        let view = get_json(&base, &format!("/api/runs/{long_run}"));
        if view["run"]["status"] == "finished" {
            assert_eq!(view["run"]["summary"]["cancelled"], 4, "{view}");
            break;
        }
        assert!(
            cancelled_at.elapsed() < Duration::from_secs(5),
            "still {} 5 s after the cancel: {}",
            view["run"]["status"],
            view["counts"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while long_sleeps() > 0 {
        assert!(
            Instant::now() < deadline,
            "the cancelled programs are still running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let cancelled = get_json(&base, &format!("/api/runs/{long_run}/objects/1101"));
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");

    every_documented_route_is_served(&base, &run);
}

/// The OpenAPI document is served without a token, and each of its routes answers as the API
/// (a JSON error or a success), never as a route the server does not have.
fn every_documented_route_is_served(base: &str, run: &str) {
    let doc: Value = http()
        .get(format!("{base}/api/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let url = format!(
                "{base}{}",
                path.replace("{id}", run)
                    .replace("{oid}", "2001")
                    .replace("{n}", "1")
            );
            let request = match method.as_str() {
                "get" => http().get(&url),
                "post" => http()
                    .post(&url)
                    .header("content-type", "application/json")
                    .body("[]"),
                "put" => http()
                    .put(&url)
                    .header("content-type", "application/json")
                    .body("[]"),
                other => panic!("{other} {path}"),
            };
            let answer = request.bearer_auth(TOKEN).send().unwrap();
            let status = answer.status().as_u16();
            let streams = answer
                .headers()
                .get("content-type")
                .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
            if streams {
                // The live events: a stream that does not end.
                assert_eq!(status, 200, "{method} {path}");
                operations += 1;
                continue;
            }
            let body = answer.text().unwrap();
            assert!(
                status < 300 || body.contains("\"error\""),
                "{method} {path}: {status} {body}"
            );
            assert_ne!(status, 405, "{method} {path}");
            operations += 1;
        }
    }
    assert_eq!(operations, 17, "every route of the runs and schedule APIs");
}
