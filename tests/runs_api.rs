//! The runs API of `orchestrator serve` end to end, on a real broker and Redis with the three
//! worker binaries: submit runs over HTTP (several at once), read their progress, cancel one;
//! invalid input is refused with every problem listed; objects that fail for good reach the
//! failed and DLQ topics; malformed results are set aside and the run goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use cluster::{Cluster, http};
use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

fn post(base: &str, path: &str, body: String) -> (StatusCode, Value) {
    let r = http()
        .post(format!("{base}{path}"))
        .body(body)
        .send()
        .unwrap();
    let status = r.status();
    (status, r.json().unwrap_or(Value::Null))
}

fn get(base: &str, path: &str) -> (StatusCode, Value) {
    let r = http().get(format!("{base}{path}")).send().unwrap();
    let status = r.status();
    (status, r.json().unwrap_or(Value::Null))
}

/// Polls a run until it is finished; returns its view.
fn wait_run(base: &str, id: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (status, view) = get(base, &format!("/api/runs/{id}"));
        assert_eq!(status, StatusCode::OK, "{view}");
        if view["run"]["status"] == "finished" {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "run {id} did not finish in time: {}",
            view["counts"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn runs_are_submitted_followed_and_cancelled_over_http() {
    let cluster = Cluster::new("api");
    let _serve = cluster.serve(None, &[], "serve.log");
    let base = cluster.http_base("serve.log");
    let _workers = cluster.workers("simulate:5");
    cluster.wait_ready(&base);

    // Invalid input: 400 with every problem, each naming object and field.
    let broken = std::fs::read_to_string(fixture("broken/everything.json")).unwrap();
    let (status, body) = post(&base, "/api/runs", broken);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let problems = body["problems"].as_array().unwrap();
    assert!(problems.len() >= 2, "{body}");
    assert!(problems.iter().all(|p| p["message"].is_string()), "{body}");
    assert!(
        problems
            .iter()
            .any(|p| p["field"].is_string() && p["id"].is_number()),
        "{body}"
    );
    let (status, body) = post(
        &base,
        "/api/runs?targets=99999",
        read_fixture("layered.json"),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("99999"), "{body}");

    // Two runs at once: a whole graph and a selection of it.
    let (status, first) = post(&base, "/api/runs", read_fixture("layered.json"));
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["objects"], 9);
    assert_eq!(first["zones"]["1-Raw"], 3);
    let (status, second) = post(
        &base,
        "/api/runs?targets=2001&source=nightly",
        read_fixture("layered.json"),
    );
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert!(second["objects"].as_u64().unwrap() < 9, "{second}");
    assert_ne!(first["run_id"], second["run_id"]);

    let one = wait_run(
        &base,
        first["run_id"].as_str().unwrap(),
        Duration::from_secs(120),
    );
    assert_eq!(one["counts"]["loaded"], 9, "{one}");
    assert_eq!(one["run"]["summary"]["loaded"], 9, "{one}");
    let two = wait_run(
        &base,
        second["run_id"].as_str().unwrap(),
        Duration::from_secs(120),
    );
    assert_eq!(two["counts"]["loaded"], second["objects"], "{two}");
    assert_eq!(two["run"]["source"], "nightly");

    // Paging and filtering of a finished run's objects (read from the store).
    let id = first["run_id"].as_str().unwrap();
    let (status, page) = get(&base, &format!("/api/runs/{id}?offset=2&limit=3"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["matching"], 9);
    let ids: Vec<u64> = page["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1005, 2001, 2002], "sorted by id, offset 2");
    let (_, loaded) = get(&base, &format!("/api/runs/{id}?state=failed"));
    assert_eq!(loaded["matching"], 0);

    let (status, list) = get(&base, "/api/runs");
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<&str> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&id), "{list}");
    assert!(
        listed.contains(&second["run_id"].as_str().unwrap()),
        "{list}"
    );
    // Newest first, a page at a time, by status.
    let (_, page) = get(&base, "/api/runs?limit=1&offset=1");
    assert_eq!(page["total"], listed.len(), "{page}");
    assert_eq!(page["runs"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["runs"][0]["run_id"], listed[1], "{page}");
    let created: Vec<u64> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["created_ms"].as_u64().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{list}");
    let (_, running) = get(&base, "/api/runs?status=running");
    assert_eq!(running["total"], 0, "both runs have finished: {running}");
    let (status, _) = get(&base, "/api/runs?status=sleeping");
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A large run cancelled right away: it finishes with cancelled objects, not all loaded.
    let big = std::fs::read_to_string(generated(cluster.dir(), 3000, 7)).unwrap();
    let (status, third) = post(&base, "/api/runs", big);
    assert_eq!(status, StatusCode::CREATED, "{third}");
    let id3 = third["run_id"].as_str().unwrap();
    let (status, body) = post(&base, &format!("/api/runs/{id3}/cancel"), String::new());
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = wait_run(&base, id3, Duration::from_secs(120));
    assert!(
        done["run"]["summary"]["cancelled"].as_u64().unwrap() > 0,
        "{done}"
    );
    assert!(done["run"]["cancelled"].as_bool().unwrap(), "{done}");
    let (status, body) = post(&base, &format!("/api/runs/{id3}/cancel"), String::new());
    assert_eq!(status, StatusCode::CONFLICT, "a finished run: {body}");

    let (status, _) = get(&base, "/api/runs/run-nope");
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(&base, "/api/runs/run-nope/cancel", String::new());
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}
