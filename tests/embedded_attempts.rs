//! The embedded run shows the same attempt history as the API: its summary prints each failed
//! object's attempts with the end of their output, and `status --state-dir DIR --object ID`
//! prints (and `--json` gives) every attempt with its worker, times, reason and whole output,
//! an upstream-failed object's blocking ancestor included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use common::*;

#[test]
fn a_run_and_status_show_every_attempt_with_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects.json");
    std::fs::write(
        &objects,
        r#"[{"IdObjet":1001,"NomObjet":"a","IdObjet_Parent":null},
            {"IdObjet":2001,"NomObjet":"b","IdObjet_Parent":1001},
            {"IdObjet":3001,"NomObjet":"c","IdObjet_Parent":2001}]"#,
    )
    .unwrap();
    let handler = script(
        dir.path(),
        "h.sh",
        r#"echo "working on $ORCH_OBJECT_ID, attempt $ORCH_ATTEMPT"
if [ "$ORCH_OBJECT_ID" = 2001 ]; then echo "no input for 2001" >&2; exit 1; fi
echo "done""#,
    );
    let state = dir.path().join("state");
    let out = orchestrator(&[
        "run",
        objects.to_str().unwrap(),
        "--handler",
        &format!("command:{}", handler.display()),
        "--state-dir",
        state.to_str().unwrap(),
        "--max-retries",
        "1",
        "--retry-base-ms",
        "10",
        "--progress",
        "none",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    for expected in [
        "object 2001:",
        "attempt 1 failed on embedded-standardized",
        "attempt 2 failed on embedded-standardized",
        "exit 1: no input for 2001",
        "| working on 2001, attempt 2",
    ] {
        assert!(
            summary.contains(expected),
            "{expected:?} not in:\n{summary}"
        );
    }

    let status = |args: &[&str]| {
        let mut all = vec!["status", "--state-dir", state.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = orchestrator(&all);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let shown = status(&["--object", "2001"]);
    for expected in [
        "object 2001 (b) of run run-",
        "failed, attempt 2, zone 2-Standardized",
        "--- attempt 1: failed on embedded-standardized",
        "--- attempt 2: failed on embedded-standardized",
        "reason: exit 1: no input for 2001",
        "working on 2001, attempt 1",
    ] {
        assert!(shown.contains(expected), "{expected:?} not in:\n{shown}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&status(&["--object", "2001", "--json"])).unwrap();
    let attempts = json["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{json}");
    let output = attempts[1]["output"].as_str().unwrap();
    assert!(
        output.contains("working on 2001, attempt 2") && output.contains("no input for 2001"),
        "{output}"
    );
    assert!(attempts[1]["dispatched_ms"].as_u64().unwrap() > 0);
    let blocked = status(&["--object", "3001"]);
    assert!(
        blocked.contains("upstream_failed") && blocked.contains("blocked by: object 2001 failed"),
        "{blocked}"
    );
    // A loaded object's attempt keeps its info and output too.
    let loaded: serde_json::Value =
        serde_json::from_str(&status(&["--object", "1001", "--json"])).unwrap();
    assert_eq!(loaded["attempts"][0]["outcome"], "loaded");
    assert_eq!(loaded["attempts"][0]["info"], "done");
    assert_eq!(
        loaded["attempts"][0]["output"],
        "working on 1001, attempt 1\ndone\n"
    );
    // An object the run does not have: exit 3.
    let out = orchestrator(&[
        "status",
        "--state-dir",
        state.to_str().unwrap(),
        "--object",
        "9",
    ]);
    assert_eq!(out.status.code(), Some(3));
}
