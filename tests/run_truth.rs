//! One truth per run: what `status` reads from the store is what the run holds. A killed run
//! shows `interrupted` with the counts it had reached (embedded here, on Redis in
//! `run_handover.rs`; an interrupted one in `embedded_run.rs`), and `status --json` and the runs
//! API agree on every object's state while a run is under way.
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
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// The stored summary counts exactly the stored records.
fn assert_summary_counts_records(status: &Value, objects: u64) {
    let summary = &status["run"]["summary"];
    for state in ["loaded", "failed", "upstream_failed", "cancelled"] {
        assert_eq!(
            summary[state].as_u64().unwrap(),
            ids_in_state(status, state).len() as u64,
            "{state}: {summary}"
        );
    }
    let terminal: u64 = ["loaded", "failed", "upstream_failed", "cancelled"]
        .iter()
        .map(|s| summary[s].as_u64().unwrap())
        .sum();
    assert_eq!(summary["pending"].as_u64().unwrap(), objects - terminal);
}

#[test]
fn a_killed_embedded_run_is_interrupted_with_the_counts_it_reached() {
    let dir = tempfile::tempdir().unwrap();
    let file = generated(dir.path(), 80, 3);
    let state = dir.path().join("state");
    let log = dir.path().join("log");
    let handler = logging_handler(dir.path(), &log, "0.05");
    let args = [
        "run",
        file.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--handler",
        &handler,
        "--max-workers",
        "3",
        "--progress",
        "none",
    ];
    let mut child = spawn_until_ends(&args, &log, 20);
    child.kill().unwrap(); // SIGKILL: nothing is written on the way out
    child.wait().unwrap();

    let killed = status(&state);
    assert_eq!(killed["run"]["status"], "interrupted", "{}", killed["run"]);
    assert_eq!(killed["runs"][0]["status"], "interrupted");
    let loaded = killed["run"]["summary"]["loaded"].as_u64().unwrap();
    assert!((1..80).contains(&loaded), "{}", killed["run"]["summary"]);
    assert_summary_counts_records(&killed, 80);
    let out = orchestrator(&["status", "--state-dir", state.to_str().unwrap()]);
    let shown = text(&out.stdout);
    assert!(shown.contains("interrupted"), "{shown}");
    assert!(shown.contains(&format!("loaded {loaded},")), "{shown}");

    let mut resume = args.to_vec();
    resume.push("--resume");
    let out = Command::new(bin()).args(&resume).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let resumed = status(&state);
    assert_eq!(resumed["run"]["status"], "finished");
    assert_eq!(resumed["run"]["summary"]["loaded"], 80);
    assert_summary_counts_records(&resumed, 80);
}

fn get(base: &str, path: &str) -> Value {
    let r = http().get(format!("{base}{path}")).send().unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().unwrap()
}

/// Each object's state; objects the store never wrote are waiting.
fn states(objects: &Value) -> BTreeMap<u64, String> {
    objects
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_u64().unwrap(),
                o["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn status_and_the_api_agree_on_every_object_and_a_run_nothing_continues_is_interrupted() {
    let cluster = Cluster::new("truth");
    let dir = cluster.dir();
    // Four roots for workers that take three at a time and hold them: three run, one waits.
    let file = dir.join("objects.json");
    std::fs::write(
        &file,
        r#"[{"IdObjet":1001,"Zone":"1-Raw"},{"IdObjet":1002,"Zone":"1-Raw"},
            {"IdObjet":1003,"Zone":"1-Raw"},{"IdObjet":1004,"Zone":"1-Raw"},
            {"IdObjet":2001,"Zone":"2-Standardized","IdObjet_Parent":"1001;1002"},
            {"IdObjet":3001,"Zone":"3-Application","IdObjet_Parent":2001}]"#,
    )
    .unwrap();
    let hold = script(dir, "hold.sh", "cat > /dev/null\nsleep 120");
    let mut serve = cluster.serve(None, &["--lease-seconds", "30"], "serve.log");
    let base = cluster.http_base("serve.log");
    let _workers = cluster.workers(&format!("command:{}", hold.display()));
    cluster.wait_ready(&base);
    let r = http()
        .post(format!("{base}/api/runs"))
        .body(std::fs::read_to_string(&file).unwrap())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let run: Value = r.json().unwrap();
    let id = run["run_id"].as_str().unwrap().to_string();

    let deadline = Instant::now() + Duration::from_secs(60);
    let view = loop {
        let view = get(&base, &format!("/api/runs/{id}?limit=100"));
        if view["counts"]["running"] == 3 {
            break view;
        }
        assert!(
            Instant::now() < deadline,
            "three never ran: {}",
            view["counts"]
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // The writes of a turn land before the next: give the store the batch in hand.
    std::thread::sleep(Duration::from_millis(500));
    let stored = cluster.status();
    let mut from_store = states(&stored["objects"]);
    for id in [1001, 1002, 1003, 1004, 2001, 3001] {
        from_store.entry(id).or_insert_with(|| "waiting".into());
    }
    assert_eq!(
        states(&view["objects"]),
        from_store,
        "API and status differ"
    );
    assert_eq!(view["run"]["summary"], stored["run"]["summary"]);
    assert_eq!(view["counts"]["dispatched"], 1, "{}", view["counts"]);

    // serve dies; the run's objects are lost from the store, so no process can continue it:
    // a new serve lists it as interrupted, with the counts it had reached.
    serve.0.kill().unwrap();
    serve.0.wait().unwrap();
    let prefix = &cluster.prefix;
    let url = &cluster.redis.url;
    let del = Command::new("redis-cli")
        .args(["-u", url, "DEL", &format!("{prefix}:run:{id}:graph")])
        .output()
        .unwrap();
    assert!(del.status.success(), "{}", text(&del.stderr));
    let _serve = cluster.serve(None, &[], "serve2.log");
    let base = cluster.http_base("serve2.log");
    cluster.wait_ready(&base);
    let view = get(&base, &format!("/api/runs/{id}"));
    assert_eq!(view["run"]["status"], "interrupted", "{}", view["run"]);
    assert_eq!(view["counts"]["running"], 3, "{}", view["counts"]);
    let listed = get(&base, "/api/runs");
    assert_eq!(listed["runs"][0]["status"], "interrupted", "{listed}");
}
