//! `orchestrator serve` under hostile input and faults, on a real broker and Redis: submissions
//! that cannot be read or are too large are refused at the door, the API is closed by tokens, an
//! event too large for the bus fails its object (not the process), and a Redis restart or a kill
//! -9 of `serve` costs a pause, never the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use cluster::{Cluster, Proc, http};
use common::*;
use reqwest::StatusCode;
use reqwest::blocking::RequestBuilder;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let r = request.send().unwrap();
    let status = r.status();
    (status, r.json().unwrap_or(Value::Null))
}

fn post(base: &str, body: impl Into<String>) -> (StatusCode, Value) {
    send(http().post(format!("{base}/api/runs")).body(body.into()))
}

fn alive(proc: &mut Proc) -> bool {
    proc.0.try_wait().unwrap().is_none()
}

#[test]
fn hostile_submissions_are_refused_at_the_door_and_serve_stays_up() {
    let cluster = Cluster::new("hostileapi");
    let mut serve = cluster.serve(
        None,
        &[
            "--max-input-bytes",
            "100000",
            "--max-object-bytes",
            "10000",
            "--submit-memory-bytes",
            "200000",
        ],
        "serve.log",
    );
    let base = cluster.http_base("serve.log");
    cluster.wait_ready(&base);

    // A parent that cannot be read is an error naming the object and the field, never "no
    // parent".
    for parent in &hostile_parents() {
        let (status, body) = post(&base, with_parent(parent));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{parent}: {body}");
        let problem = &body["problems"][0];
        assert_eq!(
            (&problem["id"], &problem["index"], &problem["field"]),
            (&json!(2001), &json!(1), &json!("IdObjet_Parent")),
            "{parent}: {body}"
        );
    }

    // Every object over the object limit is listed.
    let name = "n".repeat(20_000);
    let body = format!(
        r#"[{{"IdObjet":1001,"Zone":"1-Raw","NomObjet":"{name}"}},{{"IdObjet":1002,"Zone":"1-Raw"}},{{"IdObjet":1003,"Zone":"1-Raw","NomObjet":"{name}"}}]"#
    );
    let (status, body) = post(&base, body);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let listed: Vec<&Value> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["message"]
                .as_str()
                .unwrap()
                .contains("more than the limit")
        })
        .map(|p| &p["id"])
        .collect();
    assert_eq!(listed, vec![&json!(1001), &json!(1003)], "{body}");

    // Past the input limit: 413, declared or not.
    let big = format!("[{}]", " ".repeat(150_000));
    let (status, _) = post(&base, big.clone());
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Streamed in chunks, with no Content-Length: refused once the limit is passed, without
    // waiting for the rest (the server may hang up while the client still sends).
    let host = base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /api/runs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    for chunk in big.as_bytes().chunks(10_000) {
        let sent = write!(stream, "{:x}\r\n", chunk.len())
            .and_then(|()| stream.write_all(chunk))
            .and_then(|()| stream.write_all(b"\r\n"));
        if sent.is_err() {
            break; // refused already
        }
    }
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Submissions in progress share a memory budget (each holds twice its body: the text and
    // its compact copy): while one of 60 kB is still coming, another of 60 kB is told to come
    // back later, before it is read.
    let host = base.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&host).unwrap();
    write!(
        slow,
        "POST /api/runs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n["
    )
    .unwrap();
    slow.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let r = http()
        .post(format!("{base}/api/runs"))
        .body(format!("[{}]", " ".repeat(59_998)))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    drop(slow);
    // The budget is back once the slow one is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = post(&base, format!("[{}]", " ".repeat(59_998)));
        if status == StatusCode::CREATED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the budget never came back: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Not JSON: 415 (curl's default form type included).
    let (status, _) = send(
        http()
            .post(format!("{base}/api/runs"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(with_parent("1001")),
    );
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Padding is not stored: the run keeps its objects as compact JSON.
    let padded = format!("{}[]{}", " ".repeat(40_000), "\n".repeat(40_000));
    let (status, body) = post(&base, padded);
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let run = body["run_id"].as_str().unwrap();
    let stored = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use orchestrator_store::{RedisStore, StateStore};
        let store = RedisStore::connect(&cluster.redis.url, &cluster.prefix, None)
            .await
            .unwrap();
        store
            .graph(&orchestrator_protocol::RunId::new(run))
            .await
            .unwrap()
    });
    assert_eq!(stored.as_deref(), Some("[]"));

    assert!(alive(&mut serve), "serve stopped");
    let (status, _) = send(http().get(format!("{base}/health/readiness")));
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn tokens_close_the_api_and_leave_health_and_metrics_open() {
    let cluster = Cluster::new("tokens");
    let tokens = cluster.dir().join("tokens");
    std::fs::write(&tokens, "# who may look\nro reader-token-0123456789\n").unwrap();
    let tokens = tokens.to_str().unwrap();
    let mut serve = serve_on_all_interfaces(
        &cluster,
        &[
            ("API_TOKEN", "writer-token-0123456789"),
            ("API_TOKENS_FILE", tokens),
        ],
        "serve.log",
    );
    let base = cluster
        .http_base("serve.log")
        .replace("0.0.0.0", "127.0.0.1");
    cluster.wait_ready(&base);
    let runs = format!("{base}/api/runs");
    let (status, _) = send(http().get(&runs));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(http().get(&runs).bearer_auth("writer-token-012345678"));
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a token one character short"
    );
    let (status, _) = send(http().get(&runs).bearer_auth("reader-token-0123456789"));
    assert_eq!(status, StatusCode::OK);
    let layered = std::fs::read_to_string(fixture("layered.json")).unwrap();
    let submit = |token: Option<&str>| {
        let r = http().post(&runs).body(layered.clone());
        send(match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        })
    };
    assert_eq!(submit(None).0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        submit(Some("reader-token-0123456789")).0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        submit(Some("writer-token-0123456789")).0,
        StatusCode::CREATED
    );
    for open in ["/health/liveness", "/health/readiness", "/metrics"] {
        let (status, _) = send(http().get(format!("{base}{open}")));
        assert_eq!(status, StatusCode::OK, "{open}");
    }
    let _ = serve.0.kill();
    let _ = serve.0.wait();
    let log = std::fs::read_to_string(cluster.dir().join("serve.log")).unwrap();
    assert!(!log.contains("0123456789"), "a token in the log: {log}");

    // Without tokens, bound beyond loopback: a loud warning.
    let _open = serve_on_all_interfaces(&cluster, &[], "open.log");
    assert!(cluster.wait_for_line("open.log", "open to anyone who reaches it"));
}

/// `serve` listening on every interface, with `env` added to the cluster's.
fn serve_on_all_interfaces(cluster: &Cluster, env: &[(&str, &str)], log: &str) -> Proc {
    let mut cmd = std::process::Command::new(bin());
    cluster.env(&mut cmd);
    cmd.args(["serve", "--http", "0.0.0.0:0"])
        .env_remove("OBJECTS_PATH")
        .envs(env.iter().copied());
    let log = std::fs::File::create(cluster.dir().join(log)).unwrap();
    Proc(
        cmd.stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// A file of `n` objects in three layers (each object of a layer has the one before as parent).
fn chain_file(dir: &Path, objects: &[Value]) -> PathBuf {
    let file = dir.join("objects.json");
    std::fs::write(&file, serde_json::to_string(objects).unwrap()).unwrap();
    file
}

#[test]
fn a_ready_event_too_large_for_the_bus_fails_its_object_not_serve() {
    let mut cluster = Cluster::new("toolarge");
    // A bus whose messages hold 100 kB: the 150 kB object passes the 1 MiB object limit but
    // can never be sent.
    cluster.kafka_properties = Some("message.max.bytes=100000".to_string());
    let file = chain_file(
        cluster.dir(),
        &[
            json!({"IdObjet": 1001, "Zone": "1-Raw", "Payload": "p".repeat(150_000)}),
            json!({"IdObjet": 1002, "Zone": "1-Raw"}),
            json!({"IdObjet": 2001, "Zone": "2-Standardized", "IdObjet_Parent": 1001}),
            json!({"IdObjet": 2002, "Zone": "2-Standardized", "IdObjet_Parent": "1002"}),
        ],
    );
    let mut serve = cluster.serve(Some(&file), &[], "serve.log");
    cluster.wait_ready(&cluster.http_base("serve.log"));
    let _workers = cluster.workers("simulate:10");
    let status = cluster.wait_finished(Duration::from_secs(120));
    // Each process asked only for the topics that were missing: the broker logged no error.
    let broker = cluster.kafka.log();
    assert!(!broker.contains("TopicAlreadyExists"), "{broker}");
    let summary = &status["run"]["summary"];
    assert_eq!(
        (
            &summary["loaded"],
            &summary["failed"],
            &summary["upstream_failed"]
        ),
        (&json!(2), &json!(1), &json!(1)),
        "{status}"
    );
    let letter = &status["dead_letters"][0];
    assert_eq!(letter["id"], 1001, "{status}");
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("more than the bus's message limit"),
        "{letter}"
    );
    assert!(alive(&mut serve), "serve stopped");
}

#[test]
fn serve_rides_out_a_redis_restart_whether_stopped_or_killed() {
    for signal in ["TERM", "KILL"] {
        let mut cluster = Cluster::new("redisrestart");
        cluster.redis = services::durable_redis();
        let file = generated(cluster.dir(), 300, 3);
        let mut serve = cluster.serve(Some(&file), &[], "serve.log");
        let _workers = cluster.workers("simulate:30");
        cluster.wait_loaded(30);
        cluster.redis.restart(signal, Duration::from_millis(1500));
        // The outage was seen, and serve went on.
        assert!(
            cluster.wait_for_line("serve.log", "writing the state store failed")
                || cluster.wait_for_line("serve.log", "could not renew the writer lease"),
            "{signal}: serve never met the outage"
        );
        let status = cluster.wait_finished(Duration::from_secs(180));
        assert!(alive(&mut serve), "{signal}: serve stopped");
        assert_eq!(
            status["run"]["summary"]["loaded"], 300,
            "{signal}: {status}"
        );
        assert_eq!(status["run"]["summary"]["retries"], 0, "{signal}: {status}");
    }
}

#[test]
fn attempts_in_flight_when_serve_is_killed_go_out_again_at_once() {
    let cluster = Cluster::new("republish");
    let file = generated(cluster.dir(), 60, 3);
    // Default lease and start timeout (30 s, 300 s): an attempt left to them would show as a
    // retry, or would not finish within the test's time.
    let long = ["--lease-seconds", "30", "--start-timeout-seconds", "300"];
    let mut serve = cluster.serve(Some(&file), &long, "serve-1.log");
    // Tasks longer than the 2 s in which a restarted serve reads the results already out: the
    // attempts still running then are published again.
    let _workers = cluster.workers("simulate:1500");
    cluster.wait_loaded(10);
    serve.0.kill().unwrap();
    serve.0.wait().unwrap();
    let in_flight: Vec<u64> = {
        let s = cluster.status();
        ["dispatched", "running"]
            .iter()
            .flat_map(|state| ids_in_state(&s, state))
            .collect()
    };
    assert!(!in_flight.is_empty(), "nothing in flight at the kill");
    let _serve = cluster.serve(Some(&file), &long, "serve-2.log");
    let status = cluster.wait_finished(Duration::from_secs(120));
    assert_eq!(status["run"]["summary"]["loaded"], 60, "{status}");
    assert_eq!(status["run"]["summary"]["retries"], 0, "{status}");
    // The attempts in flight at the kill that nobody answered were published again under the
    // same attempt (those whose results were on the bus were read first), never as a new one.
    let mut copies: HashMap<(u64, u64), usize> = HashMap::new();
    let zones = ["ready.raw", "ready.standardized", "ready.application"];
    for r in zones.iter().flat_map(|z| cluster.read_topic(z)) {
        let key = (
            r.value["id"].as_u64().unwrap(),
            r.value["attempt"].as_u64().unwrap(),
        );
        *copies.entry(key).or_default() += 1;
    }
    let again = in_flight
        .iter()
        .filter(|&&id| copies.get(&(id, 1)).is_some_and(|&n| n >= 2))
        .count();
    assert!(again > 0, "no attempt in flight was published again");
    for id in in_flight {
        assert!(
            !copies.contains_key(&(id, 2)),
            "object {id}: a second attempt"
        );
    }
    eprintln!("{again} attempts in flight at the kill were published again");
}

#[test]
fn serve_started_before_redis_waits_for_it() {
    let mut cluster = Cluster::new("redislate");
    cluster.redis = services::durable_redis();
    cluster.redis.stop("TERM");
    let mut serve = cluster.serve(Some(&fixture("layered.json")), &[], "serve.log");
    assert!(cluster.wait_for_line("serve.log", "cannot reach the state store; retrying"));
    assert!(
        alive(&mut serve),
        "serve gave up on a store that is not up yet"
    );
    cluster.redis.start();
    let _workers = cluster.workers("simulate:10");
    let status = cluster.wait_finished(Duration::from_secs(120));
    assert_eq!(status["run"]["summary"]["loaded"], 9, "{status}");
}
