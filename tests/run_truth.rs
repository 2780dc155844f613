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

/// The on-call case: a run fails an object with a real handler; `--resume --rerun-failed`
/// without `--handler` runs the same handler again (the object fails again, exit 1), never
/// pretend work that would count as a load.
#[test]
fn a_resumed_rerun_runs_the_handlers_the_run_was_started_with() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let log = dir.path().join("log");
    let handler = script(
        dir.path(),
        "fail.sh",
        &format!(
            "echo \"$ORCH_OBJECT_ID $ORCH_ATTEMPT start\" >> '{log}'\n\
             cat > /dev/null\n\
             if [ \"$ORCH_OBJECT_ID\" = 2003 ]; then echo 'no such table' >&2; exit 1; fi\n\
             echo loaded-for-real",
            log = log.display(),
        ),
    );
    let handler = format!("command:{}", handler.display());
    let sample = tools("sample-objects.json");
    let (sample, state_dir) = (sample.to_str().unwrap(), state.to_str().unwrap());
    let first = [sample, "--state-dir", state_dir, "--max-retries", "0"];
    let (code, v, err) = run_json(&[&first[..], &["--handler", &handler]].concat());
    assert_eq!(code, 1, "{err}");
    assert_eq!(v["summary"]["failed"], 1, "{v}");
    assert_eq!(v["outcome"], "failed", "{v}");
    let (code, v, err) = run_json(&[&first[..], &["--resume", "--rerun-failed"]].concat());
    assert_eq!(
        code, 1,
        "the rerun must fail again, not pretend: {err}\n{v}"
    );
    assert_eq!(v["summary"]["failed"], 1, "{v}");
    assert!(err.contains("running with its handlers"), "{err}");
    let attempts: Vec<u32> = log_lines(&log)
        .iter()
        .filter(|l| l.0 == 2003)
        .map(|l| l.1)
        .collect();
    assert_eq!(attempts, [1, 2], "the program ran again for the rerun");
    let out = orchestrator(&["status", "--state-dir", state_dir, "--object", "2003"]);
    let shown = text(&out.stdout);
    assert!(!shown.contains("simulated"), "{shown}");
    assert!(shown.contains("no such table"), "{shown}");
    let status = status(&state);
    assert_eq!(status["run"]["outcome"], "failed", "{}", status["run"]);
}

/// No handler is no run: the embedded run refuses (exit 2) and says how to choose one; a
/// `simulate` run says so, marks its loads simulated, and they make nothing fresh.
#[test]
fn without_a_handler_nothing_runs_and_pretend_loads_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sample = tools("sample-objects.json");
    let (sample, state_dir) = (sample.to_str().unwrap(), state.to_str().unwrap());
    let out = Command::new(bin())
        .args(["run", sample, "--state-dir", state_dir])
        .env_remove("HANDLER")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--handler simulate"), "{err}");
    assert!(!state.join("state.redb").exists(), "nothing was opened");
    // One zone given, the others not: the missing ones are named.
    let out = orchestrator(&["run", sample, "--zone-handler", "raw=simulate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("2-Standardized, 3-Application"));

    let (code, _, err) = run_json(&[sample, "--state-dir", state_dir, "--handler", "simulate"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("simulate only pretends"), "{err}");
    let out = orchestrator(&[
        "status",
        "--state-dir",
        state_dir,
        "--object",
        "2003",
        "--json",
    ]);
    let detail: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(detail["attempts"][0]["simulated"], true, "{detail}");
    // The catalog took no pretend load: the schedule sees the sample's own Lastrun, with the
    // store as without it.
    let at = |store: &[&str]| {
        let args = [
            &["schedule", sample, "--at", "2026-11-30T09:10:00Z", "--json"],
            store,
        ]
        .concat();
        let out = orchestrator(&args);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (v["run"].clone(), v["fresh"].clone())
    };
    let without = at(&[]);
    assert!(without.0.as_array().is_some_and(|r| !r.is_empty()));
    assert_eq!(at(&["--state-dir", state_dir]), without);
}
