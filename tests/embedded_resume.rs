//! `orchestrator run` stopped and continued, as real processes: kill -9 and `--resume` (with a
//! state directory and on Redis), one writer per shared store, Ctrl-C, and `--rerun-failed`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use common::*;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn killed_with_sigkill_and_resumed_never_runs_a_loaded_object_again() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    kill_and_resume(&["--state-dir", &state], Some(&state));
}

#[test]
fn the_same_holds_with_the_redis_store() {
    let redis = services::redis();
    let prefix = services::unique_prefix("kill");
    kill_and_resume(&["--store", &redis.url, "--redis-prefix", &prefix], None);
}

#[test]
fn a_second_run_on_the_same_redis_store_is_refused_while_the_first_writes() {
    let redis = services::redis();
    let prefix = services::unique_prefix("lease");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.json");
    std::fs::write(&file, r#"[{"IdObjet":1001,"Zone":"1-Raw"}]"#).unwrap();
    let store = [
        "--store",
        redis.url.as_str(),
        "--redis-prefix",
        prefix.as_str(),
    ];
    let run = |handler: &str| {
        let mut args = vec!["run", file.to_str().unwrap(), "--handler", handler];
        args.extend_from_slice(&["--progress", "none"]);
        args.extend_from_slice(&store);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let mut first = Command::new(bin())
        .args(run("simulate:60000"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first run holds the lease once its run is stored.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = orchestrator(&[&["status", "--json"][..], &store[..]].concat());
        if out.status.success() && text(&out.stdout).contains("run-") {
            break;
        }
        assert!(Instant::now() < deadline, "the first run never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let second = orchestrator(
        &run("simulate:0")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let err = text(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "{err}");
    assert!(err.contains("is writing to this state store"), "{err}");
    first.kill().unwrap();
    first.wait().unwrap();
}

/// Runs a generated graph on the given store, kills the process with SIGKILL mid-run, and resumes.
fn kill_and_resume(store: &[&str], state_dir: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.json");
    let out = orchestrator(&[
        "generate",
        "--objects",
        "80",
        "--seed",
        "3",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let log = dir.path().join("log");
    let handler = logging_handler(dir.path(), &log, "0.05");
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--handler",
        &handler,
        "--max-workers",
        "3",
        "--progress",
        "none",
    ];
    args.extend_from_slice(store);
    let mut status_args = vec!["status", "--json"];
    status_args.extend_from_slice(store);
    let mut child = Command::new(bin())
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while log_lines(&log).iter().filter(|l| l.2 == "end").count() < 25 {
        assert!(Instant::now() < deadline, "the run made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(state) = state_dir {
        // While the run holds it, the state directory is busy, and says so.
        let busy = orchestrator(&["status", "--state-dir", state]);
        assert_eq!(busy.status.code(), Some(3));
        assert!(
            text(&busy.stderr).contains("in use by another process"),
            "{}",
            text(&busy.stderr)
        );
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let status = || -> serde_json::Value {
        let out = orchestrator(&status_args);
        assert!(out.status.success(), "status failed: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let loaded: HashSet<u64> = ids_in_state(&status(), "loaded").into_iter().collect();
    assert!(
        !loaded.is_empty() && loaded.len() < 80,
        "{} loaded before the kill",
        loaded.len()
    );
    let lines_before = log_lines(&log).len();

    // A file with another graph is refused.
    let other = fixture("layered.json");
    let mut refused = vec!["run", other.to_str().unwrap(), "--resume"];
    refused.extend_from_slice(store);
    let out = orchestrator(&refused);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("refusing to resume"),
        "{}",
        text(&out.stderr)
    );
    // Without --resume, the unfinished run is not silently replaced.
    let mut replaced = vec!["run", file.to_str().unwrap(), "--handler", "simulate"];
    replaced.extend_from_slice(store);
    let out = orchestrator(&replaced);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("add --resume"),
        "{}",
        text(&out.stderr)
    );

    let mut resume = args.clone();
    resume.push("--resume");
    let out = Command::new(bin()).args(&resume).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let after = log_lines(&log);
    assert_none_started_again(&after[lines_before..], &loaded);
    let ended: HashSet<u64> = after.iter().filter(|l| l.2 == "end").map(|l| l.0).collect();
    assert_eq!(ended.len(), 80, "every object ran to its end");
    assert_dependency_order(&after, &parents_of(&file));
    assert_eq!(ids_in_state(&status(), "loaded").len(), 80);
}

#[test]
fn interrupted_runs_stop_gracefully_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let log = dir.path().join("log");
    let handler = logging_handler(dir.path(), &log, "0.3");
    let file = fixture("layered.json");
    let args = [
        "run",
        file.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--handler",
        &handler,
        "--progress",
        "none",
    ];
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while log_lines(&log).is_empty() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let code = child.wait().unwrap().code();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("finishing the attempts in flight"), "{err}");
    // Stored as interrupted, not finished: what had not run is still to run, not cancelled.
    let stored = status(&state);
    assert_eq!(stored["run"]["status"], "interrupted", "{}", stored["run"]);
    assert_eq!(stored["run"]["cancelled"], false);
    assert_eq!(
        stored["run"]["summary"]["cancelled"], 0,
        "{}",
        stored["run"]
    );
    assert!(stored["run"]["summary"]["pending"].as_u64().unwrap() > 0);
    // What was started finished: every start has its end.
    let lines = log_lines(&log);
    assert_eq!(
        lines.iter().filter(|l| l.2 == "start").count(),
        lines.iter().filter(|l| l.2 == "end").count()
    );
    let mut resume = args.to_vec();
    resume.push("--resume");
    let out = Command::new(bin()).args(&resume).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let starts: Vec<u64> = log_lines(&log)
        .iter()
        .filter(|l| l.2 == "start")
        .map(|l| l.0)
        .collect();
    let unique: HashSet<u64> = starts.iter().copied().collect();
    assert_eq!(
        (starts.len(), unique.len()),
        (9, 9),
        "each object ran exactly once: {starts:?}"
    );
}

#[test]
fn rerun_failed_runs_only_what_did_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let log = dir.path().join("log");
    let flag = dir.path().join("broken");
    std::fs::write(&flag, "").unwrap();
    let handler = script(
        dir.path(),
        "h.sh",
        &format!(
            "echo \"$ORCH_OBJECT_ID $ORCH_ATTEMPT start\" >> '{log}'\n\
             if [ \"$ORCH_OBJECT_ID\" = 2002 ] && [ -e '{flag}' ]; then exit 1; fi\n\
             echo \"$ORCH_OBJECT_ID $ORCH_ATTEMPT end\" >> '{log}'",
            log = log.display(),
            flag = flag.display()
        ),
    );
    let handler = format!("command:{}", handler.display());
    let file = fixture("layered.json");
    let base = [
        file.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--handler",
        &handler,
        "--max-retries",
        "0",
    ];
    let (code, v, _) = run_json(&base);
    assert_eq!(code, 1);
    assert_eq!(
        (
            v["summary"]["loaded"].as_u64(),
            v["summary"]["upstream_failed"].as_u64()
        ),
        (Some(5), Some(3))
    );
    let first: HashSet<u64> = log_lines(&log)
        .iter()
        .filter(|l| l.2 == "end")
        .map(|l| l.0)
        .collect();
    std::fs::remove_file(&flag).unwrap();
    // A finished run is not run again by --resume alone.
    let mut resume = base.to_vec();
    resume.push("--resume");
    let (code, _, err) = run_json(&resume);
    assert_eq!(code, 1);
    assert!(err.contains("already finished"), "{err}");
    resume.push("--rerun-failed");
    let (code, v, err) = run_json(&resume);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["summary"]["loaded"], 9);
    // What failed loaded: no dead letter is left, in the summary or in the store.
    assert_eq!(v["dead_letters"], serde_json::json!([]), "{v}");
    let out = orchestrator(&["status", "--json", "--state-dir", state.to_str().unwrap()]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["dead_letters"], serde_json::json!([]), "{status}");
    let lines = log_lines(&log);
    let mut runs: HashMap<u64, usize> = HashMap::new();
    for l in lines.iter().filter(|l| l.2 == "start") {
        *runs.entry(l.0).or_default() += 1;
    }
    for id in &first {
        assert_eq!(runs[id], 1, "loaded object {id} ran again");
    }
    // 2002 ran twice: its failed attempt 1 and attempt 2 of the rerun.
    let attempts: Vec<u32> = lines
        .iter()
        .filter(|l| l.0 == 2002 && l.2 == "start")
        .map(|l| l.1)
        .collect();
    assert_eq!(attempts, vec![1, 2]);
}
