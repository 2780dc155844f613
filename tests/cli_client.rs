//! The command-line client of a running `serve` (`orchestrator submit`, `orchestrator runs`), on
//! a real broker and Redis with the worker binaries: submit and wait, list, show (as `status`
//! shows the same run), cancel; with API tokens set, and without the token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use cluster::Cluster;
use common::*;
use std::process::{Command, Output};

const TOKEN: &str = "a-token-of-the-runs-api";

/// `orchestrator ARGS` against `base`, with `token` as API_TOKEN (or none).
fn client(base: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("ORCHESTRATOR_URL", base)
        .env_remove("API_TOKEN");
    if let Some(t) = token {
        cmd.env("API_TOKEN", t);
    }
    cmd.output().unwrap()
}

#[test]
fn runs_are_submitted_followed_listed_shown_and_cancelled_from_the_command_line() {
    let cluster = Cluster::new("client");
    let file = fixture("layered.json");
    let file = file.to_str().unwrap();
    let _serve = cluster.serve(None, &["--api-token", TOKEN], "serve.log");
    let base = cluster.http_base("serve.log");
    let _workers = cluster.workers("simulate:5");
    cluster.wait_ready(&base);

    // Without the token: refused, exit 3, and nothing runs.
    let out = client(&base, None, &["submit", file, "--wait"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));

    // Submitted and followed to its end: every object loaded, exit 0.
    let out = client(&base, Some(TOKEN), &["submit", file, "--wait", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = view["run"]["run_id"].as_str().unwrap().to_string();
    assert_eq!(view["run"]["status"], "finished");
    assert_eq!(view["run"]["summary"]["loaded"], 9, "{view}");

    // Listed, and shown as `status` shows the same run from the store.
    let out = client(&base, Some(TOKEN), &["runs", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&run), "{}", text(&out.stdout));
    let out = client(&base, Some(TOKEN), &["runs", "show", &run]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let status = cluster.status_of(&["--run", &run]);
    let line = text(&status.stdout)
        .lines()
        .find(|l| l.starts_with(&format!("run {run}")))
        .unwrap()
        .to_string();
    assert_eq!(shown.trim(), line, "runs show and status differ");

    // A finished run cannot be cancelled (exit 3); an unknown one is not found (exit 3).
    let out = client(&base, Some(TOKEN), &["runs", "cancel", &run]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = client(&base, Some(TOKEN), &["runs", "show", "run-none"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // Nothing listens: exit 3, with a message that names the server.
    let out = client("http://127.0.0.1:9", Some(TOKEN), &["runs", "list"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("127.0.0.1:9"),
        "{}",
        text(&out.stderr)
    );
    // A wrong token: exit 3 as well.
    let out = client(&base, Some("not-the-token"), &["runs", "list"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
}

/// What failed is told: `submit --wait` and `runs show` list the failed objects with the first
/// line of their reason, a run that failed is `failed` everywhere, retrying an upstream-failed
/// object retries the failure that blocks it, a refused submission lists every problem as
/// `validate` does, and a wrong value is refused naming the values it takes (the client's, and
/// the API's JSON 400 for a query string).
#[test]
fn what_failed_is_told_and_wrong_values_are_named() {
    let cluster = Cluster::new("told");
    let file = fixture("layered.json");
    let file = file.to_str().unwrap();
    let broken = cluster.dir().join("broken");
    std::fs::write(&broken, "").unwrap();
    let handler = script(
        cluster.dir(),
        "load.sh",
        &format!(
            "cat > /dev/null\n\
             if [ \"$ORCH_OBJECT_ID\" = 2002 ] && [ -e '{}' ]; then\n\
               printf 'relation \"sales\" does not exist\\nat line 3\\n' >&2; exit 65\n\
             fi\necho ok",
            broken.display()
        ),
    );
    let handler = format!("command:{}", handler.display());
    let _serve = cluster.serve(None, &["--api-token", TOKEN], "serve.log");
    let base = cluster.http_base("serve.log");
    let _workers = cluster.workers(&handler);
    cluster.wait_ready(&base);

    let out = client(&base, Some(TOKEN), &["submit", file, "--wait"]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(shown.contains("(failed): loaded 5, failed 1"), "{shown}");
    assert!(
        shown.contains("failed objects (1):")
            && shown.contains("2002 (attempt 1): exit 65: relation \"sales\" does not exist")
            && !shown.contains("at line 3"),
        "{shown}"
    );
    let run = shown
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    let out = client(&base, Some(TOKEN), &["runs", "list", "--outcome", "failed"]);
    assert!(
        text(&out.stdout).contains(&format!("{run}  failed")),
        "{}",
        text(&out.stdout)
    );
    let out = client(
        &base,
        Some(TOKEN),
        &["runs", "list", "--outcome", "succeeded"],
    );
    assert!(!text(&out.stdout).contains(&run), "{}", text(&out.stdout));
    let out = client(
        &base,
        Some(TOKEN),
        &["runs", "show", &run, "--state", "upstream_failed"],
    );
    let shown = text(&out.stdout);
    assert!(shown.contains("upstream_failed objects (3):"), "{shown}");
    for id in ["3000", "3005", "3006"] {
        assert!(shown.contains(&format!("  {id} ")), "{shown}");
    }

    // Wrong values: the client names the valid ones (exit 2), and so does the API, in JSON.
    for args in [
        &["runs", "list", "--status", "bogus"][..],
        &["runs", "list", "--outcome", "bogus"],
        &["runs", "show", &run, "--state", "bogus"],
    ] {
        let out = client(&base, Some(TOKEN), args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("possible values"), "{err}");
    }
    let http = reqwest::blocking::Client::new();
    for path in [
        "/api/runs?status=bogus",
        "/api/runs?limit=-1",
        "/api/no-such-route",
    ] {
        let answer = http
            .get(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .unwrap();
        let status = answer.status().as_u16();
        let body: serde_json::Value = answer.json().unwrap();
        assert!(status == 400 || status == 404, "{path}: {status}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let answer = http
        .get(format!("{base}/api/runs?status=bogus"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    let body: serde_json::Value = answer.json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("finished"),
        "{body}"
    );

    // Retrying an upstream-failed object retries the failure that blocks it, and the path down.
    std::fs::remove_file(&broken).unwrap();
    let out = client(
        &base,
        Some(TOKEN),
        &["runs", "retry", &run, "3000", "--wait"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("(succeeded): loaded 9"),
        "{}",
        text(&out.stdout)
    );

    // A refused submission lists every problem as `validate` does (malformed JSON: its line
    // and column).
    for (name, at_least) in [("broken/everything.json", 3), ("broken/malformed.json", 1)] {
        let bad = fixture(name);
        let bad = bad.to_str().unwrap();
        let out = client(&base, Some(TOKEN), &["submit", bad]);
        assert_eq!(out.status.code(), Some(2));
        let listed = text(&out.stderr);
        let validated = text(&orchestrator(&["validate", bad]).stderr);
        let problems: Vec<&str> = validated
            .lines()
            .filter(|l| l.starts_with("error: ") && !l.contains("error(s)"))
            .collect();
        assert!(problems.len() >= at_least, "{validated}");
        for p in problems {
            assert!(listed.contains(p), "{p:?} not in:\n{listed}");
        }
    }
}
