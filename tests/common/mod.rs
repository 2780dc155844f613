//! Helpers shared by the end-to-end tests: the real `orchestrator` binary, fixtures, handler
//! scripts and the log they write.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_orchestrator")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

pub fn tools(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tools")
        .join(name)
}

/// A binary of the workspace, next to `orchestrator` (tools/test.sh builds them all).
pub fn workspace_bin(name: &str) -> PathBuf {
    let path = Path::new(bin()).with_file_name(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Runs the binary to completion.
pub fn orchestrator(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("HANDLER")
        .env_remove("MAX_WORKERS")
        .output()
        .expect("orchestrator runs")
}

/// `orchestrator run ARGS --json --progress none`: its exit code, its JSON summary and its
/// standard error.
pub fn run_json(args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", "--progress", "none"]);
    let out = orchestrator(&all);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), v, text(&out.stderr))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes an executable shell script.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A handler that logs "ID ATTEMPT start" and "ID ATTEMPT end" around an optional sleep.
pub fn logging_handler(dir: &Path, log: &Path, sleep: &str) -> String {
    let s = script(
        dir,
        "log.sh",
        &format!(
            "echo \"$ORCH_OBJECT_ID $ORCH_ATTEMPT start\" >> '{log}'\ncat > /dev/null\nsleep {sleep}\necho \"$ORCH_OBJECT_ID $ORCH_ATTEMPT end\" >> '{log}'",
            log = log.display()
        ),
    );
    format!("command:{}", s.display())
}

/// (object id, attempt, "start"|"end") lines of a handler log.
pub fn log_lines(log: &Path) -> Vec<(u64, u32, String)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some((
                p.next()?.parse().ok()?,
                p.next()?.parse().ok()?,
                p.next()?.to_string(),
            ))
        })
        .collect()
}

/// Parents of each object of a file, as the orchestrator reads them (plain comma lists here).
pub fn parents_of(file: &Path) -> HashMap<u64, Vec<u64>> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let id = o["IdObjet"].as_u64().unwrap();
            let parents = match &o["IdObjet_Parent"] {
                serde_json::Value::String(s) => s
                    .split([',', ';', ' '])
                    .filter_map(|t| t.trim().parse().ok())
                    .collect(),
                serde_json::Value::Number(n) => vec![n.as_u64().unwrap()],
                _ => vec![],
            };
            (id, parents)
        })
        .collect()
}

/// Asserts that every object started only after all its parents ended.
/// No object of `loaded` started again in `lines` (the handler's log after they were loaded).
pub fn assert_none_started_again(
    lines: &[(u64, u32, String)],
    loaded: &std::collections::HashSet<u64>,
) {
    for (id, attempt, what) in lines {
        assert!(
            !(what == "start" && loaded.contains(id)),
            "object {id} (attempt {attempt}) ran again after it had loaded"
        );
    }
}

pub fn assert_dependency_order(lines: &[(u64, u32, String)], parents: &HashMap<u64, Vec<u64>>) {
    let mut ended: HashMap<u64, usize> = HashMap::new();
    for (pos, (id, _, what)) in lines.iter().enumerate() {
        if what == "end" {
            ended.entry(*id).or_insert(pos);
        }
    }
    for (pos, (id, _, what)) in lines.iter().enumerate() {
        if what != "start" {
            continue;
        }
        for p in parents.get(id).into_iter().flatten() {
            let end = ended
                .get(p)
                .unwrap_or_else(|| panic!("{id} started but its parent {p} never ended"));
            assert!(
                *end < pos,
                "{id} started (line {pos}) before its parent {p} ended (line {end})"
            );
        }
    }
}

/// `orchestrator status --json` of a state directory.
pub fn status(state: &Path) -> serde_json::Value {
    let out = orchestrator(&["status", "--state-dir", state.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "status failed: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Ids of the objects in `state` of the latest run.
pub fn ids_in_state(status: &serde_json::Value, state: &str) -> Vec<u64> {
    status["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["state"] == state)
        .map(|o| o["id"].as_u64().unwrap())
        .collect()
}

/// A seeded generated graph of `objects` objects in `dir` (`orchestrator generate`).
pub fn generated(dir: &Path, objects: usize, seed: u64) -> PathBuf {
    let file = dir.join(format!("generated-{objects}-{seed}.json"));
    let out = orchestrator(&[
        "generate",
        "--objects",
        &objects.to_string(),
        "--seed",
        &seed.to_string(),
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    file
}

/// Raw object 1001, and 2001 whose `IdObjet_Parent` is `parent` (JSON text, hostile or not).
pub fn with_parent(parent: &str) -> String {
    format!(
        r#"[{{"IdObjet":1001,"Zone":"1-Raw"}},{{"IdObjet":2001,"Zone":"2-Standardized","IdObjet_Parent":{parent}}}]"#
    )
}

/// `IdObjet_Parent` values that are valid JSON but name no parent that can be read: a lone
/// surrogate, numbers out of range, nesting past the parser's depth, a decimal point, a sign.
pub fn hostile_parents() -> Vec<String> {
    vec![
        r#""1001\ud800""#.to_string(),
        "[1001, 1e400]".to_string(),
        "1e400".to_string(),
        format!("{}1001{}", "[".repeat(200), "]".repeat(200)),
        r#""1002.5""#.to_string(),
        r#""-1002""#.to_string(),
    ]
}

/// Starts `orchestrator ARGS` (its standard error piped) and waits until its handler logged at
/// least `ends` ends in `log`.
pub fn spawn_until_ends(args: &[&str], log: &Path, ends: usize) -> std::process::Child {
    let child = Command::new(bin())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while log_lines(log).iter().filter(|l| l.2 == "end").count() < ends {
        assert!(
            std::time::Instant::now() < deadline,
            "the run made no progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}
