//! Exit means done, and nothing is left behind: a `command:` program that exits while a child
//! it started still holds its output is loaded as soon as it exits (its printed line the info),
//! embedded and through a worker, even under a task timeout shorter than the child; and attempts
//! stopped by their timeout, a hundred of them on a loaded machine, leave no process of their
//! group running once `run` has exited.
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

/// Exits at once, leaving a child that holds stdout for 25 s.
const DAEMONIZING: &str = "command:sh -c 'cat > /dev/null; sleep 25 & echo parent-done'";

fn raw_objects(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let file = dir.join("objects.json");
    let objects: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"IdObjet":{},"Zone":"1-Raw"}}"#, 1000 + i))
        .collect();
    std::fs::write(&file, format!("[{}]", objects.join(","))).unwrap();
    file
}

#[test]
fn a_program_that_leaves_a_child_is_loaded_when_it_exits_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture("layered.json");
    let state = dir.path().join("state");
    let started = Instant::now();
    let (code, v, err) = run_json(&[
        file.to_str().unwrap(),
        "--handler",
        DAEMONIZING,
        "--task-timeout-seconds",
        "3",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["summary"]["loaded"], 9, "{v}");
    assert_eq!(v["summary"]["retries"], 0, "{v}");
    // Three layers one after the other: each well under its children's 25 s.
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let out = orchestrator(&[
        "status",
        "--state-dir",
        state.to_str().unwrap(),
        "--object",
        "3000",
        "--json",
    ]);
    let detail: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(detail["attempts"][0]["info"], "parent-done", "{detail}");
}

#[test]
fn a_program_that_leaves_a_child_is_loaded_when_it_exits_through_a_worker() {
    let cluster = Cluster::new("exit-done");
    let file = fixture("layered.json");
    let _serve = cluster.serve(Some(&file), &[], "serve.log");
    let env = [("TASK_TIMEOUT_SECONDS", "3")];
    let _workers: Vec<_> = ["ingestion", "standardization", "application"]
        .iter()
        .map(|z| cluster.worker_with(z, DAEMONIZING, &format!("{z}.log"), &env))
        .collect();
    let started = Instant::now();
    let status = cluster.wait_finished(Duration::from_secs(60));
    assert_eq!(status["run"]["summary"]["loaded"], 9, "{status}");
    assert_eq!(status["run"]["summary"]["retries"], 0, "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
}

/// Process groups with a live (not zombie) member, from /proc.
fn live_groups() -> std::collections::HashSet<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            let rest = stat.rsplit_once(')')?.1.to_string();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            (!matches!(fields.first(), Some(&"Z" | &"X"))).then(|| fields.get(2)?.parse().ok())?
        })
        .collect()
}

#[test]
fn a_hundred_timeouts_under_load_leave_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let file = raw_objects(dir.path(), 100);
    let groups = dir.path().join("groups");
    let handler = format!(
        "command:sh -c 'cat > /dev/null; echo $$ >> {}; sleep 30 & sleep 30'",
        groups.display()
    );
    // Load: busy loops on every core while the attempts time out.
    let busy: Vec<_> = (0..4)
        .map(|_| {
            Proc(
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let (code, v, err) = run_json(&[
        file.to_str().unwrap(),
        "--handler",
        &handler,
        "--task-timeout-seconds",
        "1",
        "--max-retries",
        "0",
        "--max-workers",
        "25",
    ]);
    drop(busy);
    assert_eq!(code, 1, "{err}");
    assert_eq!(v["summary"]["failed"], 100, "{v}");
    let started: Vec<u32> = std::fs::read_to_string(&groups)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(started.len(), 100, "every attempt's program started");
    // The kills are queued before `run` exits; a killed process leaves the process table once
    // the kernel has torn it down: allow that moment (not the programs' 30 s sleeps).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut left: Vec<&u32>;
    loop {
        let live = live_groups();
        left = started.iter().filter(|g| live.contains(g)).collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        left.is_empty(),
        "process groups left running after run exited: {left:?}"
    );
}
