//! A run started by `orchestrator run` on a shared store keeps what it was started with (its
//! targets, zone, missing-parents choice and its objects), so that `serve` on the same Redis can
//! take it over when the process that ran it dies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use cluster::{Cluster, Proc};
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn serve_takes_over_a_run_whose_process_was_killed_with_its_selection() {
    let cluster = Cluster::new("handover");
    let dir = cluster.dir();
    // 2001 names a parent loaded elsewhere (9999); 1002 is outside the targets.
    let file = dir.join("objects.json");
    std::fs::write(
        &file,
        r#"[{"IdObjet":1001,"Zone":"1-Raw"},{"IdObjet":1002,"Zone":"1-Raw"},
            {"IdObjet":2001,"Zone":"2-Standardized","IdObjet_Parent":"1001,9999"},
            {"IdObjet":3001,"Zone":"3-Application","IdObjet_Parent":"2001"}]"#,
    )
    .unwrap();
    let slow = script(dir, "slow.sh", "cat > /dev/null\nsleep 2");
    let mut run = {
        let mut cmd = Command::new(bin());
        cluster.env(&mut cmd);
        cmd.args([
            "run",
            file.to_str().unwrap(),
            "--store",
            &cluster.redis.url,
            "--redis-prefix",
            &cluster.prefix,
            "--target",
            "3001",
            "--missing-parents",
            "external",
            "--handler",
            &format!("command:{}", slow.display()),
            "--progress",
            "none",
        ]);
        Proc(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    // Killed while its first object runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = cluster.status();
        // In flight: dispatched, or already started (under load a poll can miss the moment
        // between the two).
        let in_flight = || ids_in_state(&s, "dispatched").len() + ids_in_state(&s, "running").len();
        if s["objects"].is_array() && in_flight() > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the run never dispatched: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
    run.0.kill().unwrap();
    run.0.wait().unwrap();
    // Once its writer lease runs out, nothing runs it: it is interrupted, with its counts.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = cluster.status();
        if s["run"]["status"] == "interrupted" {
            break s;
        }
        assert_eq!(s["run"]["status"], "running", "{}", s["run"]);
        assert!(Instant::now() < deadline, "never interrupted: {}", s["run"]);
        std::thread::sleep(Duration::from_millis(250));
    };
    let meta = &status["run"];
    assert_eq!(meta["targets"], serde_json::json!([3001]), "{meta}");
    assert_eq!(meta["missing_parents"], "external", "{meta}");
    let summary = &meta["summary"];
    assert_eq!(
        summary["loaded"].as_u64().unwrap(),
        ids_in_state(&status, "loaded").len() as u64,
        "{summary}"
    );
    assert_eq!(
        summary["pending"].as_u64().unwrap(),
        3 - summary["loaded"].as_u64().unwrap(),
        "{summary}"
    );

    let _serve = cluster.serve(None, &[], "serve.log");
    let _workers = cluster.workers("simulate:10");
    let status = cluster.wait_finished(Duration::from_secs(120));
    assert_eq!(status["run"]["summary"]["loaded"], 3, "{status}");
    assert_eq!(status["run"]["objects"], 3, "1002 was not selected");
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
    assert!(log.contains("continuing an unfinished run"), "{log}");
}
