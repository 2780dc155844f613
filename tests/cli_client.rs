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
